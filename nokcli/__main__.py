from nokcli.main import main

main()

from nokcli.app import main

main()

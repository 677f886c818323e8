"""The completion scripts ``nok completion SHELL`` prints (nothing else is imported here:
nokcli.main prints them without loading the command line)."""

# Each script hands the line up to the cursor to nok (nokcli.complete), in the environment
# rather than the arguments, and offers what comes back: commands, options, ids.
SCRIPTS = {
    "bash": """\
_nok_complete() {
    local IFS=$'\\n'
    COMPREPLY=( $(NOK_COMPLETE=bash NOK_COMPLETE_LINE="${COMP_LINE:0:COMP_POINT}" \\
                  command nok 2>/dev/null) )
}
complete -o default -F _nok_complete nok
""",
    "zsh": """\
#compdef nok
_nok() {
    local -a matches
    matches=(${(f)"$(NOK_COMPLETE=zsh NOK_COMPLETE_LINE="${BUFFER[1,CURSOR]}" \\
                      command nok 2>/dev/null)"})
    if (( ${#matches} )); then
        compadd -U -- "${matches[@]}"
    else
        _files
    fi
}
compdef _nok nok
""",
    "fish": """\
function __nok_complete
    env NOK_COMPLETE=fish NOK_COMPLETE_LINE=(commandline -cp) nok 2>/dev/null
end
complete --command nok --no-files --arguments '(__nok_complete)'
""",
}

# bash completion for berth: commands, subcommands, options and files.
#
# It asks the berth being completed (the first word of the line) for its
# own help, `berth --help`, `berth GROUP --help` and `berth COMMAND
# --help`, so it knows exactly the commands and options of that binary and
# cannot fall behind it.

# The commands of `berth --help`: the first word of each row.
_berth_commands()
{
    "$1" --help 2>/dev/null |
        awk '/^Commands:$/ { on = 1; next } /^$/ { on = 0 }
             on && /^  [a-z]/ { print $1 }' | sort -u
}

# The subcommands of a group (ship, cluster, ...), or nothing when $2 is
# not one.
_berth_subcommands()
{
    "$1" "$2" --help 2>/dev/null |
        awk 'NR == 1 && !/SUBCOMMAND/ { exit }
             /^Subcommands:$/ { on = 1; next } /^$/ { on = 0 }
             on && /^  [a-z]/ { print $2 }'
}

# The options of a command (its words in $2...), with the value each takes
# after it ("--program PATH"), one a line.
_berth_options()
{
    local berth=$1
    shift
    "$berth" "$@" --help 2>/dev/null |
        awk '/^  -h, --help/ { print "--help"; next }
             /^  --/ { if ($2 ~ /^[A-Z|:_=.-]+$/) print $1 " " $2;
                       else print $1 }'
}

_berth()
{
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=
    [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local berth=${COMP_WORDS[0]}
    # berth as typed, with a leading ~ expanded.
    berth=${berth/#\~/$HOME}
    COMPREPLY=()

    # The command's words so far, skipping options and their values.
    local -a cmd=()
    local i w skip=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [ $skip = 1 ]; then
            skip=0
            continue
        fi
        case $w in
        --data | --admin | --token) skip=1 ;;
        -*) ;;
        *)
            if [ ${#cmd[@]} -eq 0 ]; then
                cmd=("$w")
            elif [ ${#cmd[@]} -eq 1 ] && [ "${cmd[0]}" != help ] &&
                [ -n "$(_berth_subcommands "$berth" "${cmd[0]}")" ]; then
                cmd+=("$w")
            fi
            ;;
        esac
    done

    # A value after an option that takes one: files for a path, else none.
    if [ ${#cmd[@]} -gt 0 ] || [[ $prev == --* ]]; then
        local line value
        while read -r line; do
            if [ "${line%% *}" = "$prev" ] && [ "$line" != "$prev" ]; then
                value=${line#* }
                case $value in
                DIR) COMPREPLY=($(compgen -d -- "$cur")) ;;
                PATH | FILE | ADDR) COMPREPLY=($(compgen -f -- "$cur")) ;;
                esac
                return 0
            fi
        done < <(_berth_options "$berth" "${cmd[@]}"
                 printf '%s\n' "--data DIR" "--admin ADDR" "--token TOKEN")
    fi

    if [ ${#cmd[@]} -eq 0 ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--data --admin --token --json --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$(_berth_commands "$berth")" -- "$cur"))
        fi
        return 0
    fi
    if [ "${cmd[0]}" = help ]; then
        COMPREPLY=($(compgen -W "$(_berth_commands "$berth")" -- "$cur"))
        return 0
    fi
    local subs
    subs=$(_berth_subcommands "$berth" "${cmd[0]}")
    if [ -n "$subs" ] && [ ${#cmd[@]} -eq 1 ]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
        return 0
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_berth_options "$berth" "${cmd[@]}" | cut -d' ' -f1)" -- "$cur"))
        return 0
    fi
    # A positional argument: a file (ship import FILE, ship export ID FILE,
    # ship send SHIP -).
    COMPREPLY=($(compgen -f -- "$cur"))
}

complete -F _berth berth

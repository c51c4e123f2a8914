_oci__copy() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="oci__copy"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        oci__copy)
            opts="-f -a -q -h -V --src-creds --src-tls-verify --src-cert-dir --dest-creds --dest-tls-verify --dest-cert-dir --authfile --retry-times --digestfile --format --preserve-digests --dest-compress-format --multi-arch --all --remove-signatures --image-parallel-copies --quiet --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --src-creds)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --src-tls-verify)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --src-cert-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dest-creds)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dest-tls-verify)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --dest-cert-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --authfile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --retry-times)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --digestfile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --format)
                    COMPREPLY=($(compgen -W "oci v2s2" -- "${cur}"))
                    return 0
                    ;;
                -f)
                    COMPREPLY=($(compgen -W "oci v2s2" -- "${cur}"))
                    return 0
                    ;;
                --dest-compress-format)
                    COMPREPLY=($(compgen -W "gzip zstd" -- "${cur}"))
                    return 0
                    ;;
                --multi-arch)
                    COMPREPLY=($(compgen -W "system all index-only" -- "${cur}"))
                    return 0
                    ;;
                --image-parallel-copies)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _oci__copy -o nosort -o bashdefault -o default oci-copy
else
    complete -F _oci__copy -o bashdefault -o default oci-copy
fi

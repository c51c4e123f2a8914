# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_oci_sign_global_optspecs
    string join \n h/help V/version
end

function __fish_oci_sign_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_oci_sign_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_oci_sign_using_subcommand
    set -l cmd (__fish_oci_sign_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c oci-sign -n "__fish_oci_sign_needs_command" -s h -l help -d 'Print help'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -s V -l version -d 'Print version'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -f -a "generate-key-pair" -d 'Create cosign.key (encrypted, mode 0600) and cosign.pub, as `cosign generate-key-pair`. The password comes from COSIGN_PASSWORD, else a terminal prompt (asked twice), else one line of stdin'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand generate-key-pair" -l output-key-prefix -d 'Write PREFIX.key and PREFIX.pub instead of cosign.key and cosign.pub' -r -F
complete -c oci-sign -n "__fish_oci_sign_using_subcommand generate-key-pair" -l force -d 'Replace existing key files'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand generate-key-pair" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand generate-key-pair" -s h -l help -d 'Print help'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand help; and not __fish_seen_subcommand_from generate-key-pair help" -f -a "generate-key-pair" -d 'Create cosign.key (encrypted, mode 0600) and cosign.pub, as `cosign generate-key-pair`. The password comes from COSIGN_PASSWORD, else a terminal prompt (asked twice), else one line of stdin'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand help; and not __fish_seen_subcommand_from generate-key-pair help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

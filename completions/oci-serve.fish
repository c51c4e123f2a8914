# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_oci_serve_global_optspecs
    string join \n c/config= root= addr= idle-timeout= max-uploads-per-client= log-format= auth-challenge= q/quiet h/help V/version
end

function __fish_oci_serve_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_oci_serve_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_oci_serve_using_subcommand
    set -l cmd (__fish_oci_serve_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c oci-serve -n "__fish_oci_serve_needs_command" -s c -l config -d 'A zot configuration file (JSON, or YAML for .yaml/.yml); flags override it' -r -F
complete -c oci-serve -n "__fish_oci_serve_needs_command" -l root -d 'Storage root: every repository becomes an OCI image layout under it, with one shared, deduplicated blob store (`ROOT/_ocikit`) [default: ./oci-data; when serving, storage.rootDirectory first]' -r -F
complete -c oci-serve -n "__fish_oci_serve_needs_command" -l addr -d 'Address to listen on; port 0 picks a free port (the bound address is logged to stderr either way) [default: http.address and http.port, else 127.0.0.1:5000]' -r
complete -c oci-serve -n "__fish_oci_serve_needs_command" -l idle-timeout -d 'Close connections that make no progress for this many seconds' -r
complete -c oci-serve -n "__fish_oci_serve_needs_command" -l max-uploads-per-client -d 'How many upload sessions one client (its user, else its IP address) may have open at once; more get 429 TOOMANYREQUESTS. A session stops counting when finished, cancelled, or untouched for --idle-timeout. 0 means no limit' -r
complete -c oci-serve -n "__fish_oci_serve_needs_command" -l log-format -d 'How log lines are written: text for people, json for log collectors (one JSON object per line)' -r -f -a "text\t'`LEVEL message key=value`, for people'
json\t'One JSON object per line (timestamp, level, fields), for collectors'"
complete -c oci-serve -n "__fish_oci_serve_needs_command" -l auth-challenge -d 'The challenge a 401 carries when the registry has users: basic (the client sends its password with every request, as zot answers), or bearer (the client trades it for a token at /auth/token, docker\'s token protocol)' -r -f -a "basic\t'`WWW-Authenticate: Basic realm="…"`'
bearer\t'`WWW-Authenticate: Bearer realm="…/auth/token",service="…",scope="…"`'"
complete -c oci-serve -n "__fish_oci_serve_needs_command" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-serve -n "__fish_oci_serve_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c oci-serve -n "__fish_oci_serve_needs_command" -s V -l version -d 'Print version'
complete -c oci-serve -n "__fish_oci_serve_needs_command" -f -a "serve" -d 'Serve with a zot configuration file (zot\'s spelling of --config)'
complete -c oci-serve -n "__fish_oci_serve_needs_command" -f -a "gc" -d 'Remove unreferenced blobs, stale uploads and, with --delete-untagged, untagged manifests from a root no server is running on; prints a JSON report'
complete -c oci-serve -n "__fish_oci_serve_needs_command" -f -a "scrub" -d 'Re-hash every blob and resolve every index entry of a root; prints a JSON report, each problem on stderr, and exits 1 when something is wrong'
complete -c oci-serve -n "__fish_oci_serve_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand serve" -l root -d 'Storage root: every repository becomes an OCI image layout under it, with one shared, deduplicated blob store (`ROOT/_ocikit`) [default: ./oci-data; when serving, storage.rootDirectory first]' -r -F
complete -c oci-serve -n "__fish_oci_serve_using_subcommand serve" -l addr -d 'Address to listen on; port 0 picks a free port (the bound address is logged to stderr either way) [default: http.address and http.port, else 127.0.0.1:5000]' -r
complete -c oci-serve -n "__fish_oci_serve_using_subcommand serve" -l idle-timeout -d 'Close connections that make no progress for this many seconds' -r
complete -c oci-serve -n "__fish_oci_serve_using_subcommand serve" -l max-uploads-per-client -d 'How many upload sessions one client (its user, else its IP address) may have open at once; more get 429 TOOMANYREQUESTS. A session stops counting when finished, cancelled, or untouched for --idle-timeout. 0 means no limit' -r
complete -c oci-serve -n "__fish_oci_serve_using_subcommand serve" -l log-format -d 'How log lines are written: text for people, json for log collectors (one JSON object per line)' -r -f -a "text\t'`LEVEL message key=value`, for people'
json\t'One JSON object per line (timestamp, level, fields), for collectors'"
complete -c oci-serve -n "__fish_oci_serve_using_subcommand serve" -l auth-challenge -d 'The challenge a 401 carries when the registry has users: basic (the client sends its password with every request, as zot answers), or bearer (the client trades it for a token at /auth/token, docker\'s token protocol)' -r -f -a "basic\t'`WWW-Authenticate: Basic realm="…"`'
bearer\t'`WWW-Authenticate: Bearer realm="…/auth/token",service="…",scope="…"`'"
complete -c oci-serve -n "__fish_oci_serve_using_subcommand serve" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand gc" -l root -d 'Storage root: every repository becomes an OCI image layout under it, with one shared, deduplicated blob store (`ROOT/_ocikit`) [default: ./oci-data; when serving, storage.rootDirectory first]' -r -F
complete -c oci-serve -n "__fish_oci_serve_using_subcommand gc" -l grace -d 'Keep unreferenced blobs (and untagged manifests) younger than this (a Go duration: 90s, 30m, 1h30m)' -r
complete -c oci-serve -n "__fish_oci_serve_using_subcommand gc" -l dry-run -d 'Print what would be removed, remove nothing'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand gc" -l delete-untagged -d 'Also remove manifests that no tag reaches (kept by default: images are pinned by digest). Referrers of kept manifests always stay'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand gc" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand gc" -s h -l help -d 'Print help'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand scrub" -l root -d 'Storage root: every repository becomes an OCI image layout under it, with one shared, deduplicated blob store (`ROOT/_ocikit`) [default: ./oci-data; when serving, storage.rootDirectory first]' -r -F
complete -c oci-serve -n "__fish_oci_serve_using_subcommand scrub" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand scrub" -s h -l help -d 'Print help'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand help; and not __fish_seen_subcommand_from serve gc scrub help" -f -a "serve" -d 'Serve with a zot configuration file (zot\'s spelling of --config)'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand help; and not __fish_seen_subcommand_from serve gc scrub help" -f -a "gc" -d 'Remove unreferenced blobs, stale uploads and, with --delete-untagged, untagged manifests from a root no server is running on; prints a JSON report'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand help; and not __fish_seen_subcommand_from serve gc scrub help" -f -a "scrub" -d 'Re-hash every blob and resolve every index entry of a root; prints a JSON report, each problem on stderr, and exits 1 when something is wrong'
complete -c oci-serve -n "__fish_oci_serve_using_subcommand help; and not __fish_seen_subcommand_from serve gc scrub help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

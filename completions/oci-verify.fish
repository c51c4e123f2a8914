# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_oci_verify_global_optspecs
    string join \n key= policy= allow-unmatched a/annotations= check-identity= creds= tls-verify= cert-dir= authfile= q/quiet h/help V/version
end

function __fish_oci_verify_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_oci_verify_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_oci_verify_using_subcommand
    set -l cmd (__fish_oci_verify_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c oci-verify -n "__fish_oci_verify_needs_command" -l key -d 'The key file: cosign.key (private, to sign; password from COSIGN_PASSWORD, else a terminal prompt, else stdin) or cosign.pub (public, to verify)' -r -F
complete -c oci-verify -n "__fish_oci_verify_needs_command" -l policy -d 'A ClusterImagePolicy file (several YAML documents allowed): every policy matching the image must pass' -r -F
complete -c oci-verify -n "__fish_oci_verify_needs_command" -s a -l annotations -d 'Annotations KEY=VALUE, repeatable: signed into the payload\'s `optional` by oci-sign, required of the signature by oci-verify' -r
complete -c oci-verify -n "__fish_oci_verify_needs_command" -l check-identity -d 'Require the signed docker-reference to be REPO (by default, as cosign, a signature copied to a mirror with its image still verifies)' -r
complete -c oci-verify -n "__fish_oci_verify_needs_command" -l creds -d 'Credentials for the registry, as USERNAME[:PASSWORD]' -r
complete -c oci-verify -n "__fish_oci_verify_needs_command" -l tls-verify -d 'Require HTTPS with a verified certificate (default: true, except for loopback registries, which are treated as insecure registries)' -r -f -a "true\t''
false\t''"
complete -c oci-verify -n "__fish_oci_verify_needs_command" -l cert-dir -d 'Directory of certificates for the registry: *.crt CAs, *.cert/*.key client pairs' -r -F
complete -c oci-verify -n "__fish_oci_verify_needs_command" -l authfile -d 'Path of the registry auth file (containers\' auth.json format; default: REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, then the Docker config with its credential helpers)' -r -F
complete -c oci-verify -n "__fish_oci_verify_needs_command" -l allow-unmatched -d 'With --policy, admit images that no policy matches (default: deny)'
complete -c oci-verify -n "__fish_oci_verify_needs_command" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-verify -n "__fish_oci_verify_needs_command" -s h -l help -d 'Print help'
complete -c oci-verify -n "__fish_oci_verify_needs_command" -s V -l version -d 'Print version'
complete -c oci-verify -n "__fish_oci_verify_needs_command" -a "attestation" -d 'Verify in-toto attestations (`cosign verify-attestation`) and print the verified statements'
complete -c oci-verify -n "__fish_oci_verify_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -l key -d 'The key file: cosign.key (private, to sign; password from COSIGN_PASSWORD, else a terminal prompt, else stdin) or cosign.pub (public, to verify)' -r -F
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -l type -d 'The predicate type: custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex, or a URI' -r
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -l check-identity -d 'Require the signed docker-reference to be REPO (by default, as cosign, a signature copied to a mirror with its image still verifies)' -r
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -l creds -d 'Credentials for the registry, as USERNAME[:PASSWORD]' -r
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -l tls-verify -d 'Require HTTPS with a verified certificate (default: true, except for loopback registries, which are treated as insecure registries)' -r -f -a "true\t''
false\t''"
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -l cert-dir -d 'Directory of certificates for the registry: *.crt CAs, *.cert/*.key client pairs' -r -F
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -l authfile -d 'Path of the registry auth file (containers\' auth.json format; default: REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, then the Docker config with its credential helpers)' -r -F
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-verify -n "__fish_oci_verify_using_subcommand attestation" -s h -l help -d 'Print help'
complete -c oci-verify -n "__fish_oci_verify_using_subcommand help; and not __fish_seen_subcommand_from attestation help" -f -a "attestation" -d 'Verify in-toto attestations (`cosign verify-attestation`) and print the verified statements'
complete -c oci-verify -n "__fish_oci_verify_using_subcommand help; and not __fish_seen_subcommand_from attestation help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

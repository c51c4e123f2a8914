# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_oci_sign_global_optspecs
    string join \n a/annotations= recursive key= sign-container-identity= registry-referrers-mode= creds= tls-verify= cert-dir= authfile= q/quiet h/help V/version
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

complete -c oci-sign -n "__fish_oci_sign_needs_command" -s a -l annotations -d 'Annotations KEY=VALUE, repeatable: signed into the payload\'s `optional` by oci-sign, required of the signature by oci-verify' -r
complete -c oci-sign -n "__fish_oci_sign_needs_command" -l key -d 'The key file: cosign.key (private, to sign; password from COSIGN_PASSWORD, else a terminal prompt, else stdin) or cosign.pub (public, to verify)' -r -F
complete -c oci-sign -n "__fish_oci_sign_needs_command" -l sign-container-identity -d 'The repository name to sign as (docker-reference), e.g. the registry repository an oci: layout will be pushed to' -r
complete -c oci-sign -n "__fish_oci_sign_needs_command" -l registry-referrers-mode -d 'Where to store: cosign\'s legacy .sig/.att tag, or OCI 1.1 referrers' -r -f -a "legacy\t'cosign\'s `sha256-<hex>.sig` tag, which every verifier reads'
oci-1-1\t'An OCI 1.1 referrer manifest (artifactType, subject)'"
complete -c oci-sign -n "__fish_oci_sign_needs_command" -l creds -d 'Credentials for the registry, as USERNAME[:PASSWORD]' -r
complete -c oci-sign -n "__fish_oci_sign_needs_command" -l tls-verify -d 'Require HTTPS with a verified certificate (default: true, except for loopback registries, which are treated as insecure registries)' -r -f -a "true\t''
false\t''"
complete -c oci-sign -n "__fish_oci_sign_needs_command" -l cert-dir -d 'Directory of certificates for the registry: *.crt CAs, *.cert/*.key client pairs' -r -F
complete -c oci-sign -n "__fish_oci_sign_needs_command" -l authfile -d 'Path of the registry auth file (containers\' auth.json format; default: REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, then the Docker config with its credential helpers)' -r -F
complete -c oci-sign -n "__fish_oci_sign_needs_command" -l recursive -d 'For an index, also sign every manifest it lists'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -s V -l version -d 'Print version'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -a "generate-key-pair" -d 'Create cosign.key (encrypted, mode 0600) and cosign.pub, as `cosign generate-key-pair`. The password comes from COSIGN_PASSWORD, else a terminal prompt (asked twice), else one line of stdin'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -a "attest" -d 'Attach a signed in-toto attestation (DSSE) to each image, as `cosign attest`: stored in the image\'s sha256-<hex>.att tag'
complete -c oci-sign -n "__fish_oci_sign_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand generate-key-pair" -l output-key-prefix -d 'Write PREFIX.key and PREFIX.pub instead of cosign.key and cosign.pub' -r -F
complete -c oci-sign -n "__fish_oci_sign_using_subcommand generate-key-pair" -l force -d 'Replace existing key files'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand generate-key-pair" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand generate-key-pair" -s h -l help -d 'Print help'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l predicate -d 'The predicate file' -r -F
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l type -d 'The predicate type: custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex, or a URI' -r
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l key -d 'The key file: cosign.key (private, to sign; password from COSIGN_PASSWORD, else a terminal prompt, else stdin) or cosign.pub (public, to verify)' -r -F
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l sign-container-identity -d 'The repository name to sign as (docker-reference), e.g. the registry repository an oci: layout will be pushed to' -r
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l registry-referrers-mode -d 'Where to store: cosign\'s legacy .sig/.att tag, or OCI 1.1 referrers' -r -f -a "legacy\t'cosign\'s `sha256-<hex>.sig` tag, which every verifier reads'
oci-1-1\t'An OCI 1.1 referrer manifest (artifactType, subject)'"
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l creds -d 'Credentials for the registry, as USERNAME[:PASSWORD]' -r
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l tls-verify -d 'Require HTTPS with a verified certificate (default: true, except for loopback registries, which are treated as insecure registries)' -r -f -a "true\t''
false\t''"
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l cert-dir -d 'Directory of certificates for the registry: *.crt CAs, *.cert/*.key client pairs' -r -F
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -l authfile -d 'Path of the registry auth file (containers\' auth.json format; default: REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, then the Docker config with its credential helpers)' -r -F
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand attest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand help; and not __fish_seen_subcommand_from generate-key-pair attest help" -f -a "generate-key-pair" -d 'Create cosign.key (encrypted, mode 0600) and cosign.pub, as `cosign generate-key-pair`. The password comes from COSIGN_PASSWORD, else a terminal prompt (asked twice), else one line of stdin'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand help; and not __fish_seen_subcommand_from generate-key-pair attest help" -f -a "attest" -d 'Attach a signed in-toto attestation (DSSE) to each image, as `cosign attest`: stored in the image\'s sha256-<hex>.att tag'
complete -c oci-sign -n "__fish_oci_sign_using_subcommand help; and not __fish_seen_subcommand_from generate-key-pair attest help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

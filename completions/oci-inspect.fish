complete -c oci-inspect -l creds -d 'Credentials for the registry, as USERNAME[:PASSWORD]' -r
complete -c oci-inspect -l tls-verify -d 'Require HTTPS with a verified certificate (default: true, except for loopback registries, which are treated as insecure registries)' -r -f -a "true\t''
false\t''"
complete -c oci-inspect -l cert-dir -d 'Directory of certificates for the registry: *.crt CAs, *.cert/*.key client pairs' -r -F
complete -c oci-inspect -l authfile -d 'Path of the registry auth file (containers\' auth.json format; default: REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, then the Docker config with its credential helpers)' -r -F
complete -c oci-inspect -l retry-times -d 'How many times to retry a registry request after a 429, a 5xx or an I/O error' -r
complete -c oci-inspect -l raw -d 'Print the manifest or index exactly as stored (with --config: the config\'s exact bytes)'
complete -c oci-inspect -l config -d 'Print the image\'s config'
complete -c oci-inspect -l tags -d 'Print the repository\'s tags ({"Repository":…,"Tags":[…]}), as skopeo list-tags does'
complete -c oci-inspect -l digest -d 'Print one pipe-contract line: {"image","digest","mediaType","size"}'
complete -c oci-inspect -s n -l no-tags -d 'Do not list the repository\'s tags in the summary\'s RepoTags'
complete -c oci-inspect -s h -l help -d 'Print help (see more with \'--help\')'
complete -c oci-inspect -s V -l version -d 'Print version'

complete -c oci-copy -l src-creds -d 'Credentials for the source registry, as USERNAME[:PASSWORD]' -r
complete -c oci-copy -l src-tls-verify -d 'Require HTTPS with a verified certificate for the source (default: true, except for loopback registries)' -r -f -a "true\t''
false\t''"
complete -c oci-copy -l src-cert-dir -d 'Directory of certificates for the source registry: *.crt CAs, *.cert/*.key client pairs' -r -F
complete -c oci-copy -l dest-creds -d 'Credentials for the destination registry, as USERNAME[:PASSWORD]' -r
complete -c oci-copy -l dest-tls-verify -d 'Require HTTPS with a verified certificate for the destination (default: true, except for loopback registries)' -r -f -a "true\t''
false\t''"
complete -c oci-copy -l dest-cert-dir -d 'Directory of certificates for the destination registry: *.crt CAs, *.cert/*.key client pairs' -r -F
complete -c oci-copy -l authfile -d 'Path of the registry auth file (containers\' auth.json format; default: REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, then the Docker config with its credential helpers)' -r -F
complete -c oci-copy -l retry-times -d 'How many times to retry a registry request after a 429, a 5xx or an I/O error' -r
complete -c oci-copy -l digestfile -d 'Write the digest of the copied manifest to this file' -r -F
complete -c oci-copy -s f -l format -d 'Manifest format at the destination (converting changes the digest)' -r -f -a "oci\t'OCI image manifest / index'
v2s2\t'Docker schema 2 manifest / manifest list'"
complete -c oci-copy -l dest-compress-format -d 'Recompress layers with this algorithm (changes layer and manifest digests)' -r -f -a "gzip\t'gzip'
zstd\t'zstd'"
complete -c oci-copy -l multi-arch -d 'What to copy of a multi-platform index [default: the whole index, as it is]' -r -f -a "system\t'Only the image for this machine\'s platform'
all\t'Every image and the index'
index-only\t'The index alone (its images must already be at the destination)'"
complete -c oci-copy -l image-parallel-copies -d 'How many blobs to copy at once' -r
complete -c oci-copy -l preserve-digests -d 'Fail instead of converting or recompressing anything that would change a digest'
complete -c oci-copy -s a -l all -d 'Copy every image of an index (same as --multi-arch all)'
complete -c oci-copy -l remove-signatures -d 'Do not copy signatures, attestations and SBOMs (cosign tags, referrers)'
complete -c oci-copy -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-copy -s h -l help -d 'Print help (see more with \'--help\')'
complete -c oci-copy -s V -l version -d 'Print version'

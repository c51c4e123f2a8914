complete -c oci-serve -l root -d 'Storage root: every repository becomes an OCI image layout under it, with one shared, deduplicated blob store (`ROOT/_ocikit`)' -r -F
complete -c oci-serve -l addr -d 'Address to listen on; port 0 picks a free port (the bound address is logged to stderr either way)' -r
complete -c oci-serve -l idle-timeout -d 'Close connections that make no progress for this many seconds' -r
complete -c oci-serve -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-serve -s h -l help -d 'Print help'
complete -c oci-serve -s V -l version -d 'Print version'

complete -c oci-build -s f -l stacker-file -d 'The stacker.yaml to build' -r -F
complete -c oci-build -l oci-dir -d 'The OCI layout to write the images to (its path is also ${{STACKER_OCI_DIR}})' -r -F
complete -c oci-build -l substitute -d 'A substitution for ${{KEY}} placeholders, as KEY=VALUE (repeatable; a later one wins)' -r
complete -c oci-build -l substitute-file -d 'A YAML file of KEY: VALUE substitutions (read before --substitute, which wins)' -r -F
complete -c oci-build -l layer-type -d 'The layer format (only `tar`, OCI\'s; stacker\'s squashfs is not supported)' -r -f -a "tar\t''"
complete -c oci-build -l compression -d 'Layer compression: gzip (read everywhere) or zstd (faster and smaller)' -r -f -a "gzip\t''
zstd\t''"
complete -c oci-build -l platform -d 'Build for these platforms, OS/ARCH[/VARIANT], comma-separated (default: this machine\'s). ${{TARGETOS}}, ${{TARGETARCH}} and ${{TARGETVARIANT}} are set for each; with more than one, each image is tagged as an image index of one manifest per platform. A run step needs a platform this machine can execute (its own, or one with a binfmt_misc handler)' -r
complete -c oci-build -l runtime -d 'The OCI runtime that executes `run` steps' -r
complete -c oci-build -l roots-dir -d 'Where image root filesystems are kept (its path is also ${{STACKER_ROOTFS_DIR}})' -r -F
complete -c oci-build -l stacker-dir -d 'Scratch space for staged blobs, downloads and runtime bundles' -r -F
complete -c oci-build -l require-hash -d 'Fail when an http(s) import has no `hash`'
complete -c oci-build -l dry-run -d 'Parse, substitute and order the build, print the plan, build nothing'
complete -c oci-build -l no-cache -d 'Build every image from its inputs, ignoring the build cache (which otherwise skips an image whose directives, base and import contents are unchanged); the cache is refreshed with the results'
complete -c oci-build -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-build -s h -l help -d 'Print help (see more with \'--help\')'
complete -c oci-build -s V -l version -d 'Print version'

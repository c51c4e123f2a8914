# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_oci_build_global_optspecs
    string join \n f/stacker-file= oci-dir= substitute= substitute-file= require-hash dry-run no-cache layer-type= compression= platform= runtime= roots-dir= stacker-dir= q/quiet h/help V/version
end

function __fish_oci_build_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_oci_build_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_oci_build_using_subcommand
    set -l cmd (__fish_oci_build_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c oci-build -n "__fish_oci_build_needs_command" -s f -l stacker-file -d 'The stacker.yaml to build' -r -F
complete -c oci-build -n "__fish_oci_build_needs_command" -l oci-dir -d 'The OCI layout to write the images to (its path is also ${{STACKER_OCI_DIR}})' -r -F
complete -c oci-build -n "__fish_oci_build_needs_command" -l substitute -d 'A substitution for ${{KEY}} placeholders, as KEY=VALUE (repeatable; a later one wins)' -r
complete -c oci-build -n "__fish_oci_build_needs_command" -l substitute-file -d 'A YAML file of KEY: VALUE substitutions (read before --substitute, which wins)' -r -F
complete -c oci-build -n "__fish_oci_build_needs_command" -l layer-type -d 'The layer format (only `tar`, OCI\'s; stacker\'s squashfs is not supported)' -r -f -a "tar\t''"
complete -c oci-build -n "__fish_oci_build_needs_command" -l compression -d 'Layer compression: gzip (read everywhere) or zstd (faster and smaller)' -r -f -a "gzip\t''
zstd\t''"
complete -c oci-build -n "__fish_oci_build_needs_command" -l platform -d 'Build for these platforms, OS/ARCH[/VARIANT], comma-separated, and tag each image as an OCI image index of one manifest per platform (even for one platform, so the index says which platform it is). Without it, each image is built for this machine and tagged as a plain manifest, as stacker does. ${{TARGETOS}}, ${{TARGETARCH}} and ${{TARGETVARIANT}} are set for each platform. A run step needs a platform this machine can execute (its own, or one with a binfmt_misc handler)' -r
complete -c oci-build -n "__fish_oci_build_needs_command" -l runtime -d 'The OCI runtime that executes `run` steps' -r
complete -c oci-build -n "__fish_oci_build_needs_command" -l roots-dir -d 'Where image root filesystems are kept (its path is also ${{STACKER_ROOTFS_DIR}})' -r -F
complete -c oci-build -n "__fish_oci_build_needs_command" -l stacker-dir -d 'Scratch space for staged blobs, the build cache, pulled bases and runtime bundles (in its oci-build/ directory). After each build, what no cache entry still needs is removed from it' -r -F
complete -c oci-build -n "__fish_oci_build_needs_command" -l require-hash -d 'Fail when an http(s) import has no `hash`'
complete -c oci-build -n "__fish_oci_build_needs_command" -l dry-run -d 'Parse, substitute and order the build, print the plan, build nothing'
complete -c oci-build -n "__fish_oci_build_needs_command" -l no-cache -d 'Build every image from its inputs, ignoring the build cache (which otherwise skips an image whose directives, base and import contents are unchanged); the cache is refreshed with the results'
complete -c oci-build -n "__fish_oci_build_needs_command" -s q -l quiet -d 'Print nothing on stderr but errors (no progress, no logs)'
complete -c oci-build -n "__fish_oci_build_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c oci-build -n "__fish_oci_build_needs_command" -s V -l version -d 'Print version'
complete -c oci-build -n "__fish_oci_build_needs_command" -f -a "clean" -d 'Remove what builds leave behind, as `stacker clean` does: the --roots-dir, the --oci-dir layout and the --stacker-dir (build cache, staged blobs, pulled bases)'
complete -c oci-build -n "__fish_oci_build_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c oci-build -n "__fish_oci_build_using_subcommand clean" -l oci-dir -d 'The OCI layout to write the images to (its path is also ${{STACKER_OCI_DIR}})' -r -F
complete -c oci-build -n "__fish_oci_build_using_subcommand clean" -l roots-dir -d 'Where image root filesystems are kept (its path is also ${{STACKER_ROOTFS_DIR}})' -r -F
complete -c oci-build -n "__fish_oci_build_using_subcommand clean" -l stacker-dir -d 'Scratch space for staged blobs, the build cache, pulled bases and runtime bundles (in its oci-build/ directory). After each build, what no cache entry still needs is removed from it' -r -F
complete -c oci-build -n "__fish_oci_build_using_subcommand clean" -l all -d 'Accepted for stacker compatibility (a no-op there too): clean always removes everything'
complete -c oci-build -n "__fish_oci_build_using_subcommand clean" -s h -l help -d 'Print help'
complete -c oci-build -n "__fish_oci_build_using_subcommand help; and not __fish_seen_subcommand_from clean help" -f -a "clean" -d 'Remove what builds leave behind, as `stacker clean` does: the --roots-dir, the --oci-dir layout and the --stacker-dir (build cache, staged blobs, pulled bases)'
complete -c oci-build -n "__fish_oci_build_using_subcommand help; and not __fish_seen_subcommand_from clean help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

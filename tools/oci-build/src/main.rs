//! oci-build: stacker.yaml → OCI image layout.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = oci_build::Cli::parse();
    ocikit_cli::exit("oci-build", oci_build::run(cli))
}

//! `oci-sign`: see the library crate for what it does.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    ocikit_cli::exit("oci-sign", oci_sign::run(oci_sign::Cli::parse()))
}

//! `oci-verify`: see the library crate for what it does.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    ocikit_cli::exit("oci-verify", oci_verify::run(oci_verify::Cli::parse()))
}

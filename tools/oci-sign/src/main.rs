//! `oci-sign`: see the library crate for what it does.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    oci_sign::main_with(oci_sign::Cli::parse())
}

//! `oci-serve`: see the library for what it does.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = oci_serve::Cli::parse();
    ocikit_cli::exit("oci-serve", oci_serve::run(cli))
}

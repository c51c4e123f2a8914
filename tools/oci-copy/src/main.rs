//! `oci-copy`: see the library half (`oci_copy::run`) and `man oci-copy`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    ocikit_cli::exit("oci-copy", oci_copy::run(oci_copy::Cli::parse()))
}

//! `oci-inspect`: see the library half (`oci_inspect::run`) and `man oci-inspect`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    ocikit_cli::exit("oci-inspect", oci_inspect::run(oci_inspect::Cli::parse()))
}

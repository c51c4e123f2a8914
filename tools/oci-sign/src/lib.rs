//! `oci-sign`: cosign-compatible key pairs, image signatures and attestations.
//!
//! This crate is the command line only: arguments become calls into
//! `ocikit::cosign`, where the formats live and are tested.

mod password;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory as _, Parser, Subcommand};

/// Sign container images the way cosign does, with cosign's key files.
#[derive(Debug, Parser)]
#[command(name = "oci-sign", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create cosign.key (encrypted, mode 0600) and cosign.pub, as `cosign
    /// generate-key-pair`. The password comes from COSIGN_PASSWORD, else a
    /// terminal prompt (asked twice), else one line of stdin.
    GenerateKeyPair(GenerateKeyPair),
}

/// `oci-sign generate-key-pair`.
#[derive(Debug, clap::Args)]
pub struct GenerateKeyPair {
    /// Write PREFIX.key and PREFIX.pub instead of cosign.key and cosign.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_key_prefix: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
    /// Shared output flags.
    #[command(flatten)]
    pub output: ocikit_cli::OutputArgs,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the tool.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::GenerateKeyPair(args) => generate_key_pair(args),
    }
}

fn generate_key_pair(args: GenerateKeyPair) -> Result<ExitCode> {
    let password = password::read(true, true)?;
    let paths =
        ocikit::cosign::keys::write_key_pair(&args.output_key_prefix, &password, args.force)
            .context("generating a key pair")?;
    if !args.output.quiet {
        eprintln!("Private key written to {}", paths.private_key.display());
        eprintln!("Public key written to {}", paths.public_key.display());
    }
    let line = serde_json::json!({
        "privateKey": paths.private_key,
        "publicKey": paths.public_key,
    });
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        super::command().debug_assert();
    }
}

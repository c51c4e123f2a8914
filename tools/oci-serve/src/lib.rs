//! `oci-serve`: an OCI Distribution Spec v1.1 registry that needs no config
//! file. Every repository is stored as an OCI image layout under `--root`
//! (see `ocikit::storage::fs` for the mapping), so `oci:ROOT/<name>:<tag>` is
//! readable by skopeo, umoci and oci-copy directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use ocikit::server::{self, ServerConfig};
use ocikit::storage::fs::FsStorage;

/// Serve OCI images over the distribution API from a directory of OCI layouts.
#[derive(Debug, Parser)]
#[command(name = "oci-serve", version, about, long_about = None)]
pub struct Cli {
    /// Storage root: every repository becomes an OCI image layout under it,
    /// with one shared, deduplicated blob store (`ROOT/_ocikit`).
    #[arg(long, value_name = "DIR", default_value = "./oci-data")]
    pub root: PathBuf,

    /// Address to listen on; port 0 picks a free port (the bound address is
    /// logged to stderr either way).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,

    /// Close connections that make no progress for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub idle_timeout: u64,

    #[command(flatten)]
    pub output: ocikit_cli::OutputArgs,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the registry until SIGINT or SIGTERM.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    ocikit_cli::init_logging(cli.output.quiet);
    let storage = FsStorage::open(&cli.root)
        .with_context(|| format!("opening storage root {}", cli.root.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(cli.addr)
            .await
            .with_context(|| {
                format!(
                    "listening on {} (is another registry running there? try --addr 127.0.0.1:0)",
                    cli.addr
                )
            })?;
        let bound = listener.local_addr().context("reading the bound address")?;
        if !cli.output.quiet {
            eprintln!(
                "oci-serve: listening on http://{bound} (storage {})",
                cli.root.display()
            );
        }
        let idle = std::time::Duration::from_secs(cli.idle_timeout.max(1));
        let config = ServerConfig {
            idle_timeout: idle,
            header_timeout: idle.min(std::time::Duration::from_secs(30)),
            ..ServerConfig::default()
        };
        server::serve(listener, storage, config, shutdown_signal())
            .await
            .context("serving")?;
        if !cli.output.quiet {
            eprintln!("oci-serve: stopped");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["oci-serve"]).expect("parse");
        assert_eq!(cli.root, PathBuf::from("./oci-data"));
        assert_eq!(cli.addr.to_string(), "127.0.0.1:5000");
        let err = Cli::try_parse_from(["oci-serve", "--addr", "nowhere"]).expect_err("bad addr");
        assert!(err.to_string().contains("invalid value 'nowhere'"), "{err}");
    }
}

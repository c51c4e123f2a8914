//! `oci-serve`: an OCI Distribution Spec v1.1 registry that needs no config
//! file, and reads zot's when it is given one (`--config FILE`, or zot's own
//! spelling `oci-serve serve FILE`). Every repository is stored as an OCI
//! image layout under the root (see `ocikit::storage::fs` for the mapping),
//! so `oci:ROOT/<name>:<tag>` is readable by skopeo, umoci and oci-copy
//! directly.

pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use ocikit::htpasswd::Htpasswd;
use ocikit::server::auth::{Auth, AuthOptions};
use ocikit::server::{self, ServerConfig};
use ocikit::storage::fs::{FsOptions, FsStorage, GcOptions};

pub use settings::Settings;

/// Serve OCI images over the distribution API from a directory of OCI layouts.
#[derive(Debug, Parser)]
#[command(
    name = "oci-serve",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A zot configuration file (JSON, or YAML for .yaml/.yml); flags override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(flatten)]
    pub output: ocikit_cli::OutputArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `oci-serve` does besides serving with flags only.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve with a zot configuration file (zot's spelling of --config).
    Serve {
        /// A zot configuration file (JSON, or YAML for .yaml/.yml).
        #[arg(value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        output: ocikit_cli::OutputArgs,
    },
    /// Remove unreferenced blobs, stale uploads and, with --delete-untagged,
    /// untagged manifests from a root no server is running on; prints a JSON
    /// report.
    Gc(GcArgs),
    /// Re-hash every blob and resolve every index entry of a root; prints a
    /// JSON report, each problem on stderr, and exits 1 when something is wrong.
    Scrub {
        /// Storage root: every repository becomes an OCI image layout under
        /// it, with one shared, deduplicated blob store (`ROOT/_ocikit`)
        /// [default: ./oci-data; when serving, storage.rootDirectory first].
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        #[command(flatten)]
        output: ocikit_cli::OutputArgs,
    },
}

/// `oci-serve gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Storage root: every repository becomes an OCI image layout under
    /// it, with one shared, deduplicated blob store (`ROOT/_ocikit`)
    /// [default: ./oci-data; when serving, storage.rootDirectory first].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Keep unreferenced blobs (and untagged manifests) younger than this
    /// (a Go duration: 90s, 30m, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = go_duration)]
    pub grace: std::time::Duration,
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove manifests that no tag reaches (kept by default: images
    /// are pinned by digest). Referrers of kept manifests always stay.
    #[arg(long)]
    pub delete_untagged: bool,
    #[command(flatten)]
    pub output: ocikit_cli::OutputArgs,
}

fn go_duration(text: &str) -> Result<std::time::Duration, String> {
    ocikit::zot_config::parse_go_duration(text)
}

/// The flags of a serving run; each overrides the config file's setting.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Storage root: every repository becomes an OCI image layout under
    /// it, with one shared, deduplicated blob store (`ROOT/_ocikit`)
    /// [default: ./oci-data; when serving, storage.rootDirectory first].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Address to listen on; port 0 picks a free port (the bound address is
    /// logged to stderr either way) [default: http.address and http.port,
    /// else 127.0.0.1:5000].
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<SocketAddr>,

    /// Close connections that make no progress for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub idle_timeout: u64,

    /// How many upload sessions one client (its user, else its IP address)
    /// may have open at once; more get 429 TOOMANYREQUESTS. A session stops
    /// counting when finished, cancelled, or untouched for --idle-timeout.
    /// 0 means no limit.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_UPLOADS_PER_CLIENT)]
    pub max_uploads_per_client: usize,

    /// How log lines are written: text for people, json for log collectors
    /// (one JSON object per line).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The challenge a 401 carries when the registry has users: basic (the
    /// client sends its password with every request, as zot answers), or
    /// bearer (the client trades it for a token at /auth/token, docker's
    /// token protocol).
    #[arg(long, value_name = "SCHEME", value_enum, default_value_t = AuthChallenge::Basic)]
    pub auth_challenge: AuthChallenge,
}

/// The challenge of 401 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthChallenge {
    /// `WWW-Authenticate: Basic realm="…"`.
    Basic,
    /// `WWW-Authenticate: Bearer realm="…/auth/token",service="…",scope="…"`.
    Bearer,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `LEVEL message key=value`, for people.
    Text,
    /// One JSON object per line (timestamp, level, fields), for collectors.
    Json,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs what the command line asks for; serving runs until SIGINT or SIGTERM.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => {
            let settings = Settings::resolve(cli.config.as_deref(), &cli.serve, cli.output.quiet)?;
            serve(settings)
        }
        Some(Command::Serve {
            config,
            serve: args,
            output,
        }) => {
            let settings = Settings::resolve(Some(&config), &args, output.quiet)?;
            serve(settings)
        }
        Some(Command::Gc(args)) => gc(args),
        Some(Command::Scrub { root, output }) => scrub(root, output.quiet),
    }
}

fn default_root(root: Option<PathBuf>) -> PathBuf {
    root.unwrap_or_else(|| PathBuf::from(settings::DEFAULT_ROOT))
}

/// `oci-serve gc`: one collection of a root no server runs on.
fn gc(args: GcArgs) -> anyhow::Result<ExitCode> {
    let root = default_root(args.root);
    let storage = FsStorage::open(&root)
        .with_context(|| format!("opening storage root {}", root.display()))?;
    let options = GcOptions {
        grace: args.grace,
        // Opening the root already dropped every upload of a previous run.
        upload_grace: std::time::Duration::ZERO,
        delete_untagged: args.delete_untagged,
        dry_run: args.dry_run,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime
        .block_on(storage.gc(options))
        .with_context(|| format!("collecting garbage in {}", root.display()))?;
    if !args.output.quiet {
        for manifest in &report.manifests {
            eprintln!(
                "oci-serve gc: {} untagged manifest {manifest}",
                if report.dry_run {
                    "would remove"
                } else {
                    "removed"
                }
            );
        }
    }
    println!("{}", serde_json::to_string(&report).context("report")?);
    Ok(ExitCode::SUCCESS)
}

/// `oci-serve scrub`: exit 1 when anything is wrong.
fn scrub(root: Option<PathBuf>, quiet: bool) -> anyhow::Result<ExitCode> {
    let root = default_root(root);
    if !root.join(ocikit::storage::fs::PRIVATE_DIR).is_dir() {
        return Err(ocikit_cli::usage(anyhow::anyhow!(
            "{} is not an oci-serve storage root (no {} directory); check --root",
            root.display(),
            ocikit::storage::fs::PRIVATE_DIR
        )));
    }
    let report = ocikit::storage::scrub::scrub(&root)
        .with_context(|| format!("checking {}", root.display()))?;
    for problem in &report.problems {
        eprintln!("oci-serve scrub: {problem}");
    }
    let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    println!(
        "{}",
        serde_json::json!({
            "root": root.display().to_string(),
            "repositories": report.repositories,
            "blobs": report.blobs,
            "manifests": report.manifests,
            "problems": problems,
        })
    );
    if report.problems.is_empty() {
        if !quiet {
            eprintln!(
                "oci-serve scrub: {} clean ({} repositories, {} blobs, {} manifests)",
                root.display(),
                report.repositories,
                report.blobs,
                report.manifests
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// Housekeeping every `interval`: the online GC (when `gc` gives its
/// grace) and the storage-size gauge, both reported in `/metrics`.
async fn housekeeping(
    storage: FsStorage,
    metrics: std::sync::Arc<ocikit::server::metrics::Metrics>,
    gc: Option<std::time::Duration>,
    interval: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        ticks.tick().await;
        if let (Some(delay), false) = (gc, first) {
            let options = GcOptions {
                grace: delay,
                ..GcOptions::default()
            };
            match storage.gc(options).await {
                Ok(report) => {
                    metrics.count("ocikit_gc_runs_total", "Garbage collection runs.", 1.0);
                    metrics.count(
                        "ocikit_gc_removed_blobs_total",
                        "Blob links and stored blobs garbage collection removed.",
                        (report.blobs + report.stored_blobs) as f64,
                    );
                    tracing::debug!(
                        blobs = report.blobs,
                        stored_blobs = report.stored_blobs,
                        bytes = report.bytes,
                        uploads = report.uploads,
                        "garbage collection done"
                    );
                }
                Err(err) => {
                    metrics.count(
                        "ocikit_gc_failures_total",
                        "Garbage collection runs that failed.",
                        1.0,
                    );
                    tracing::error!("garbage collection: {err}");
                }
            }
        }
        first = false;
        match storage.stored_bytes().await {
            Ok(bytes) => metrics.gauge(
                "ocikit_storage_bytes",
                "Bytes in the shared blob store.",
                bytes as f64,
            ),
            Err(err) => tracing::warn!("measuring the storage: {err}"),
        }
    }
}

/// Sets up logging: `RUST_LOG` wins, then the settings' level; text or JSON;
/// stderr or the configured file.
fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log_level))
        .with_context(|| format!("log level {:?}", settings.log_level))?;
    let (writer, terminal) = match &settings.log_output {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log.output {}", path.display()))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(terminal && std::env::var_os("NO_COLOR").is_none())
            .without_time()
            .try_init(),
    };
    Ok(())
}

/// Raises the soft limit on open files to the hard one, as Go programs
/// (zot among them) do at start: every upload session holds a file and every
/// connection a socket, and the usual soft limit of 1024 is what a handful
/// of clients at their upload limit would use up.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(current), maximum) = (limit.current, limit.maximum) else {
        return;
    };
    // An unlimited hard limit still has the kernel's nr_open above it.
    let wanted = maximum.unwrap_or(1 << 20);
    if current >= wanted {
        return;
    }
    let raised = Rlimit {
        current: Some(wanted),
        maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!("open files limit raised from {current} to {wanted}"),
        Err(e) => tracing::warn!(
            "could not raise the open files limit from {current} to {wanted}: {e}; \
             many clients at once may run out (raise it with ulimit -n or LimitNOFILE=)"
        ),
    }
}

fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    init_logging(&settings)?;
    raise_open_files_limit();
    let storage = FsStorage::open_with(
        &settings.root,
        FsOptions {
            dedupe: settings.dedupe,
        },
    )
    .with_context(|| format!("opening storage root {}", settings.root.display()))?;
    let auth = auth(&settings)?;
    let tls = settings
        .tls
        .as_ref()
        .map(ocikit::server::tls::server_config)
        .transpose()
        .context("http.tls")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&settings.addr)
            .await
            .with_context(|| {
                format!(
                    "listening on {} (is another registry running there? try --addr 127.0.0.1:0)",
                    settings.addr
                )
            })?;
        let bound = listener.local_addr().context("reading the bound address")?;
        tracing::info!(
            "listening on {scheme}://{bound} (storage {})",
            settings.root.display()
        );
        let idle = settings.idle_timeout;
        let config = ServerConfig {
            idle_timeout: idle,
            header_timeout: idle.min(std::time::Duration::from_secs(30)),
            auth: auth.map(std::sync::Arc::new),
            tls,
            max_uploads_per_client: settings.max_uploads_per_client,
            ..ServerConfig::default()
        };
        let interval = settings
            .gc
            .map_or(std::time::Duration::from_secs(60), |(_, interval)| interval);
        tokio::spawn(housekeeping(
            storage.clone(),
            config.metrics.clone(),
            settings.gc.map(|(delay, _)| delay),
            interval,
        ));
        server::serve(listener, storage, config, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Where a root keeps its token-signing key: in the private directory, which
/// no repository name can reach and which GC and scrub leave alone.
pub fn token_key_path(root: &std::path::Path) -> PathBuf {
    root.join(ocikit::storage::fs::PRIVATE_DIR)
        .join("token.key")
}

/// Users and rules, when the settings have any; the htpasswd file is read
/// here (a bad line is an error naming it) and again whenever it changes
/// (a bad line then keeps the previous users), and the token-signing key
/// is read from the root (made on the first start), so tokens outlive a
/// restart.
fn auth(settings: &Settings) -> anyhow::Result<Option<Auth>> {
    let client_certs = settings.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    if settings.htpasswd.is_none() && settings.access.is_none() && !client_certs {
        return Ok(None);
    }
    let htpasswd = settings
        .htpasswd
        .as_deref()
        .map(Htpasswd::load)
        .transpose()
        .context("http.auth.htpasswd.path")?;
    let key = ocikit::server::auth::token_key(&token_key_path(&settings.root))?;
    Ok(Some(Auth::with_token_key(
        AuthOptions {
            realm: settings.realm.clone(),
            htpasswd,
            access: settings.access.clone(),
            scheme: settings.scheme,
            fail_delay: settings.fail_delay,
        },
        key,
    )))
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
    fn command_lines() {
        let cli = Cli::try_parse_from(["oci-serve"]).expect("parse");
        assert!(cli.command.is_none() && cli.config.is_none());
        assert_eq!(cli.serve.root, None);
        let err = Cli::try_parse_from(["oci-serve", "--addr", "nowhere"]).expect_err("bad addr");
        assert!(err.to_string().contains("invalid value 'nowhere'"), "{err}");
        let cli = Cli::try_parse_from(["oci-serve", "--config", "z.json", "--root", "r"])
            .expect("--config");
        assert_eq!(cli.config, Some(PathBuf::from("z.json")));
        let cli = Cli::try_parse_from(["oci-serve", "serve", "z.yaml", "--addr", "127.0.0.1:1"])
            .expect("serve FILE");
        match cli.command {
            Some(Command::Serve { config, serve, .. }) => {
                assert_eq!(config, PathBuf::from("z.yaml"));
                assert_eq!(serve.addr.map(|a| a.port()), Some(1));
            }
            other => panic!("{other:?}"),
        }
        let err = Cli::try_parse_from(["oci-serve", "serve"]).expect_err("no file");
        assert!(err.to_string().contains("<FILE>"), "{err}");
        let err = Cli::try_parse_from(["oci-serve", "--log-format", "xml"]).expect_err("format");
        assert!(
            err.to_string().contains("possible values: text, json"),
            "{err}"
        );
    }

    /// Every example config in examples/oci-serve parses and resolves, so the
    /// examples cannot rot.
    #[test]
    fn examples_load() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/oci-serve");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("examples/oci-serve") {
            let path = entry.expect("entry").path();
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "yaml" | "yml")
            ) {
                continue;
            }
            let args = Cli::try_parse_from(["oci-serve"]).expect("parse").serve;
            Settings::resolve(Some(&path), &args, false)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            seen += 1;
        }
        assert!(seen >= 2, "examples/oci-serve holds {seen} configs");
    }
}

//! What every ocikit tool's command line shares, defined once so the tools
//! agree on flag names, help texts and exit codes (STYLE.md 3 and 4).
//!
//! - flag groups to `#[command(flatten)]` into a tool's `Cli`: [`OutputArgs`],
//!   [`AuthArgs`], [`RegistryArgs`] (one registry), [`SrcRegistryArgs`] and
//!   [`DestRegistryArgs`] (skopeo's `--src-*`/`--dest-*` pairs);
//! - [`exit`]: the one place a tool's `Result` becomes an exit code and its
//!   error is printed, once, as `tool: error: cause`;
//! - [`usage`] and [`Failure`] to pick exit code 2 or a tool-specific code
//!   (cosign's 10/11/12) from deep inside a tool;
//! - [`progress`]: the copy engine's progress events as bars on a TTY, a
//!   plain line every few seconds otherwise.
#![deny(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

pub mod images;
pub mod progress;

/// `--quiet`: every tool has it, with this meaning.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Print nothing on stderr but errors (no progress, no logs).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Where registry credentials come from when no `--creds` flag is given.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// Path of the registry auth file (containers' auth.json format; default:
    /// REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json,
    /// ~/.config/containers/auth.json, then the Docker config with its credential helpers).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

/// How hard to try against flaky registries (skopeo's `--retry-times`).
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// How many times to retry a registry request after a 429, a 5xx or an I/O error.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retry_times: u32,
}

/// Connection settings for the one registry a tool talks to.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Credentials for the registry, as USERNAME[:PASSWORD].
    #[arg(long, value_name = "USERNAME[:PASSWORD]")]
    pub creds: Option<String>,
    /// Require HTTPS with a verified certificate (default: true, except for
    /// loopback registries, which are treated as insecure registries).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Directory of certificates for the registry: *.crt CAs, *.cert/*.key client pairs.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

/// Connection settings for a copy's source registry (skopeo's names).
#[derive(Debug, Clone, Default, Args)]
pub struct SrcRegistryArgs {
    /// Credentials for the source registry, as USERNAME[:PASSWORD].
    #[arg(long, value_name = "USERNAME[:PASSWORD]")]
    pub src_creds: Option<String>,
    /// Require HTTPS with a verified certificate for the source (default:
    /// true, except for loopback registries).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub src_tls_verify: Option<bool>,
    /// Directory of certificates for the source registry: *.crt CAs, *.cert/*.key client pairs.
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,
}

/// Connection settings for a copy's destination registry (skopeo's names).
#[derive(Debug, Clone, Default, Args)]
pub struct DestRegistryArgs {
    /// Credentials for the destination registry, as USERNAME[:PASSWORD].
    #[arg(long, value_name = "USERNAME[:PASSWORD]")]
    pub dest_creds: Option<String>,
    /// Require HTTPS with a verified certificate for the destination
    /// (default: true, except for loopback registries).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub dest_tls_verify: Option<bool>,
    /// Directory of certificates for the destination registry: *.crt CAs, *.cert/*.key client pairs.
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,
}

impl From<SrcRegistryArgs> for RegistryArgs {
    fn from(a: SrcRegistryArgs) -> RegistryArgs {
        RegistryArgs {
            creds: a.src_creds,
            tls_verify: a.src_tls_verify,
            cert_dir: a.src_cert_dir,
        }
    }
}

impl From<DestRegistryArgs> for RegistryArgs {
    fn from(a: DestRegistryArgs) -> RegistryArgs {
        RegistryArgs {
            creds: a.dest_creds,
            tls_verify: a.dest_tls_verify,
            cert_dir: a.dest_cert_dir,
        }
    }
}

impl RegistryArgs {
    /// The registry client's options from these flags, `--authfile` and
    /// `--retry-times`; `creds_flag` is the flag named in a 401/403 message.
    /// Malformed `--creds` is a usage error.
    pub fn client_options(
        &self,
        auth: &AuthArgs,
        retry: &RetryArgs,
        creds_flag: &'static str,
    ) -> anyhow::Result<ocikit::registry::ClientOptions> {
        let creds = self
            .creds
            .as_deref()
            .map(ocikit::registry::Credentials::parse)
            .transpose()
            .map_err(|e| usage(anyhow::Error::new(e).context(creds_flag)))?;
        Ok(ocikit::registry::ClientOptions {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            creds,
            creds_flag,
            authfile: auth.authfile.clone(),
            retry_times: retry.retry_times,
            ..ocikit::registry::ClientOptions::default()
        })
    }
}

/// Splits `USERNAME[:PASSWORD]` as skopeo does (the first colon separates).
pub fn split_creds(creds: &str) -> (String, String) {
    match creds.split_once(':') {
        Some((user, password)) => (user.to_owned(), password.to_owned()),
        None => (creds.to_owned(), String::new()),
    }
}

/// An error that ends the tool with a specific exit code (cosign's 10, 11,
/// 12, or 2 for usage); everything else exits 1.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// What went wrong, printed once by [`exit`].
    pub error: anyhow::Error,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&one_line(&self.error))
    }
}

impl std::error::Error for Failure {}

/// Marks an error as a usage error (exit 2), e.g. a malformed image reference.
pub fn usage(error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code: 2,
        error: error.into(),
    })
}

/// Ends a tool: prints the error once as `tool: …` (the whole cause chain on
/// one line) and picks the exit code. A broken pipe (the reader of stdout went
/// away, as with `| head`) is not an error.
pub fn exit(tool: &str, result: anyhow::Result<ExitCode>) -> ExitCode {
    let error = match result {
        Ok(code) => return code,
        Err(error) => error,
    };
    ExitCode::from(report(tool, &error))
}

/// Reports one error the way [`exit`] does and returns its exit code (0 for
/// a broken pipe, which is not reported): for a stream of images from stdin,
/// which reports each bad one, goes on, and exits with the highest code.
pub fn report(tool: &str, error: &anyhow::Error) -> u8 {
    if is_broken_pipe(error) {
        return 0;
    }
    let code = error
        .chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map_or(1, |f| f.code);
    eprintln!("{tool}: {}", one_line(error));
    code
}

/// The cause chain on one line, `outer: cause: …`, leaving out a cause whose
/// text the line already holds: library errors often name their source in
/// their own message (`{path}: {source}`), and saying it twice reads as two
/// failures.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Whether the error is a closed stdout (the reader went away, as with `| head`).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs to stderr: warnings by default, nothing but errors with `--quiet`,
/// `RUST_LOG` to see more. Honours `NO_COLOR`.
pub fn init_logging(quiet: bool) {
    let default = if quiet { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .with_target(false)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        src: SrcRegistryArgs,
        #[command(flatten)]
        dest: DestRegistryArgs,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        output: OutputArgs,
    }

    #[test]
    fn flags_parse_as_skopeo_writes_them() {
        let p = Probe::try_parse_from([
            "t",
            "--src-tls-verify=false",
            "--dest-tls-verify",
            "--dest-creds",
            "u:p:w",
            "--authfile",
            "a.json",
            "-q",
        ])
        .expect("parse");
        assert_eq!(p.src.src_tls_verify, Some(false));
        assert_eq!(p.dest.dest_tls_verify, Some(true));
        assert_eq!(
            split_creds(p.dest.dest_creds.as_deref().unwrap_or_default()),
            ("u".into(), "p:w".into())
        );
        assert!(p.output.quiet);
        let r: RegistryArgs = p.src.into();
        assert_eq!(r.tls_verify, Some(false));
        Probe::command_for_test().debug_assert();
    }

    impl Probe {
        fn command_for_test() -> clap::Command {
            <Probe as clap::CommandFactory>::command()
        }
    }

    /// An error whose message already names its source, as ocikit's
    /// `{path}: {source}` errors do.
    #[derive(Debug)]
    struct Named(std::io::Error);

    impl std::fmt::Display for Named {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "/x/index.json: {}", self.0)
        }
    }

    impl std::error::Error for Named {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn one_line_says_each_cause_once() {
        let io = std::io::Error::other("Not a directory");
        let error = anyhow::Error::new(Named(io)).context("reading oci:/x");
        assert_eq!(
            one_line(&error),
            "reading oci:/x: /x/index.json: Not a directory"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit("t", Ok(ExitCode::from(3))), ExitCode::from(3));
        assert_eq!(
            exit("t", Err(usage(anyhow::anyhow!("bad ref")))),
            ExitCode::from(2)
        );
        let coded = anyhow::Error::new(Failure {
            code: 12,
            error: anyhow::anyhow!("no match"),
        });
        assert_eq!(
            exit("t", Err(coded.context("verifying x"))),
            ExitCode::from(12)
        );
        assert_eq!(exit("t", Err(anyhow::anyhow!("plain"))), ExitCode::from(1));
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(
            exit("t", Err(pipe.context("writing stdout"))),
            ExitCode::SUCCESS
        );
    }
}

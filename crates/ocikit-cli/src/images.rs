//! The image arguments of the tools that act on images one by one (oci-sign,
//! oci-verify): each argument, or each JSON line of stdin for `-`, pinned to
//! its digest, plus the helpers those tools share (`-a` pairs, the registry
//! client, cosign's exit codes, the output line).

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use ocikit::pipe::ImageLine;
use ocikit::reference::ImageReference;

/// One image to act on, with the stdin line it came from (whose fields are
/// passed along).
pub struct Work {
    /// The reference (pinned to the line's digest for stdin lines).
    pub reference: ImageReference,
    /// The input line, for `-`.
    pub line: Option<ImageLine>,
}

/// Expands the arguments; bad stdin lines and references are returned as
/// errors in place, so the caller reports them and goes on.
pub fn expand(args: &[String]) -> Vec<Result<Work>> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            for line in ocikit::pipe::read_lines(std::io::stdin().lock()) {
                out.push(line.map_err(anyhow::Error::new).and_then(|line| {
                    let reference = ImageReference::parse(&line.image)
                        .map_err(|e| crate::usage(anyhow!(e)))?
                        .pinned(line.digest.clone());
                    Ok(Work {
                        reference,
                        line: Some(line),
                    })
                }));
            }
        } else {
            out.push(
                ImageReference::parse(arg)
                    .map(|reference| Work {
                        reference,
                        line: None,
                    })
                    .map_err(|e| crate::usage(anyhow!(e))),
            );
        }
    }
    out
}

/// Parses `-a key=value` flags.
pub fn annotations(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| crate::usage(anyhow!("-a {pair:?}: expected KEY=VALUE")))
        })
        .collect()
}

/// The registry client the flags describe (`--creds`, `--tls-verify`,
/// `--cert-dir`, `--authfile`), with the client's default retries.
pub fn client(
    registry: &crate::RegistryArgs,
    auth: &crate::AuthArgs,
) -> Result<ocikit::registry::Client> {
    let retry = crate::RetryArgs {
        retry_times: ocikit::registry::ClientOptions::default().retry_times,
    };
    let options = registry.client_options(auth, &retry, "--creds")?;
    Ok(ocikit::registry::Client::new(options)?)
}

/// Turns a store error into a tool error with cosign's exit code.
pub fn fail(error: ocikit::cosign::store::StoreError) -> anyhow::Error {
    match error.exit_code() {
        1 => anyhow::Error::new(error),
        code => anyhow::Error::new(crate::Failure {
            code,
            error: error.into(),
        }),
    }
}

/// The output line: the input line's fields (for `-`), else a fresh line.
pub fn output_line(work: &Work, manifest: &ocikit::cosign::store::StoredManifest) -> ImageLine {
    match &work.line {
        Some(line) => line.clone(),
        None => ImageLine::new(
            work.reference.to_string(),
            manifest.digest.clone(),
            manifest.media_type.clone(),
            manifest.bytes.len() as u64,
        ),
    }
}

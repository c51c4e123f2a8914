//! `oci-verify`: check cosign signatures and attestations on images against
//! a public key or a ClusterImagePolicy file, as `cosign verify --key …
//! --insecure-ignore-tlog` does, with cosign's exit codes (10 no signatures,
//! 11 image not found, 12 no matching signature).
//!
//! The command line only: the checks live in `ocikit::cosign` and
//! `ocikit::policy`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{CommandFactory as _, Parser, Subcommand};
use futures_util::StreamExt as _;
use ocikit::cosign::attestation::{self, PredicateType};
use ocikit::cosign::places;
use ocikit::cosign::signature::{self, VerifyOptions};
use ocikit::cosign::store;
use ocikit::cosign::PublicKey;
use ocikit::policy::{self, Evidence, PolicySet};
use ocikit::reference::ImageReference;
use ocikit_cli::images;

/// Verify cosign signatures on images: every signature on the image's digest
/// is checked against the key (or the policies), and one JSON line per
/// verified image is printed with the verified payloads. `-` reads images as
/// JSON lines from stdin and verifies them concurrently.
#[derive(Debug, Parser)]
#[command(
    name = "oci-verify",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// A subcommand; without one, verify signatures.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Verification options.
    #[command(flatten)]
    pub verify: VerifyArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify in-toto attestations (`cosign verify-attestation`) and print
    /// the verified statements.
    Attestation(AttestationArgs),
}

/// Flags shared by both verifications.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Require the signed docker-reference to be REPO (by default, as cosign,
    /// a signature copied to a mirror with its image still verifies).
    #[arg(long, value_name = "REPO")]
    pub check_identity: Option<String>,
    /// Registry connection.
    #[command(flatten)]
    pub registry: ocikit_cli::RegistryArgs,
    /// Registry credentials.
    #[command(flatten)]
    pub auth: ocikit_cli::AuthArgs,
    /// Output.
    #[command(flatten)]
    pub output: ocikit_cli::OutputArgs,
    /// Images: oci:PATH[:TAG], docker://HOST/REPO[:TAG|@DIGEST], HOST/REPO…, or - for JSON lines on stdin.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `oci-verify --key K | --policy FILE IMAGE…`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The key file: cosign.key (private, to sign; password from COSIGN_PASSWORD,
    /// else a terminal prompt, else stdin) or cosign.pub (public, to verify).
    #[arg(
        long,
        value_name = "KEY",
        required_unless_present = "policy",
        conflicts_with = "policy"
    )]
    pub key: Option<PathBuf>,
    /// A ClusterImagePolicy file (several YAML documents allowed): every
    /// policy matching the image must pass.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// With --policy, admit images that no policy matches (default: deny).
    #[arg(long, requires = "policy")]
    pub allow_unmatched: bool,
    /// Annotations KEY=VALUE, repeatable: signed into the payload's `optional`
    /// by oci-sign, required of the signature by oci-verify.
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Identity, registry, output and images.
    #[command(flatten)]
    pub common: Common,
}

/// `oci-verify attestation`.
#[derive(Debug, clap::Args)]
pub struct AttestationArgs {
    /// The key file: cosign.key (private, to sign; password from COSIGN_PASSWORD,
    /// else a terminal prompt, else stdin) or cosign.pub (public, to verify).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The predicate type: custom, slsaprovenance, slsaprovenance02,
    /// slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex, or a URI.
    #[arg(long = "type", value_name = "TYPE")]
    pub predicate_type: Option<String>,
    /// Identity, registry, output and images.
    #[command(flatten)]
    pub common: Common,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

enum Check {
    Key {
        key: PublicKey,
        options: VerifyOptions,
    },
    Policy {
        policies: PolicySet,
        allow_unmatched: bool,
    },
    Attestation {
        key: PublicKey,
        predicate_type: Option<String>,
    },
}

/// Runs the tool.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let (check, common) = match cli.command {
        Some(Command::Attestation(args)) => {
            let key = ocikit::cosign::keys::load_public_key(&args.key)?;
            let predicate_type = args
                .predicate_type
                .as_deref()
                .map(PredicateType::parse)
                .transpose()
                .map_err(ocikit_cli::usage)?
                .map(|k| k.uri().to_owned());
            (
                Check::Attestation {
                    key,
                    predicate_type,
                },
                args.common,
            )
        }
        None => {
            let args = cli.verify;
            let check = match (&args.key, &args.policy) {
                (Some(key), None) => Check::Key {
                    key: ocikit::cosign::keys::load_public_key(key)?,
                    options: VerifyOptions {
                        annotations: images::annotations(&args.annotations)?,
                        identity: args.common.check_identity.clone(),
                    },
                },
                (None, Some(path)) => Check::Policy {
                    policies: PolicySet::load(path)?,
                    allow_unmatched: args.allow_unmatched,
                },
                _ => return Err(ocikit_cli::usage(anyhow!("give one of --key or --policy"))),
            };
            (check, args.common)
        }
    };
    if !common.output.quiet {
        eprintln!(
            "oci-verify: no transparency log and no TUF root: signatures are checked against the given keys only (as cosign verify --insecure-ignore-tlog)"
        );
    }
    let client = images::client(&common.registry, &common.auth)?;
    let work = images::expand(&common.images);
    let runtime = tokio::runtime::Runtime::new()?;
    let mut worst = 0u8;
    runtime.block_on(async {
        let mut results = futures_util::stream::iter(work)
            .map(|work| {
                let (client, check, common) = (&client, &check, &common);
                async move {
                    let work = work?;
                    verify_one(client, check, common, &work)
                        .await
                        .with_context(|| work.reference.to_string())
                }
            })
            .buffered(16);
        let mut stdout = std::io::stdout().lock();
        while let Some(result) = results.next().await {
            let outcome = result.and_then(|line| Ok(line.write_to(&mut stdout)?));
            if let Err(error) = outcome {
                worst = worst.max(ocikit_cli::report("oci-verify", &error));
            }
        }
    });
    Ok(ExitCode::from(worst))
}

fn cosign_failure(error: ocikit::cosign::CosignError) -> anyhow::Error {
    images::fail(error.into())
}

/// The name policy globs match: `host/repo:tag` or `host/repo@digest`.
fn policy_name(reference: &ImageReference, digest: &ocikit::digest::Digest) -> String {
    match reference {
        ImageReference::Registry(r) => policy::image_name(
            &r.registry,
            &r.repository,
            r.tag.as_deref(),
            r.digest.as_ref().or(r.tag.is_none().then_some(digest)),
        ),
        other => other.to_string(),
    }
}

async fn verify_one(
    client: &ocikit::registry::Client,
    check: &Check,
    common: &Common,
    work: &images::Work,
) -> Result<ocikit::pipe::ImageLine> {
    let opened = places::open(&work.reference, client).map_err(images::fail)?;
    let manifest = store::resolve(&opened.place, &opened.reference)
        .await
        .map_err(images::fail)?;
    let image = work.reference.to_string();
    let mut line = images::output_line(work, &manifest);
    match check {
        Check::Key { key, options } => {
            let layers = store::signature_layers(&opened.place, &manifest.digest)
                .await
                .map_err(images::fail)?;
            let verified = signature::verify_all(&image, key, &layers, &manifest.digest, options)
                .map_err(cosign_failure)?;
            let payloads: Vec<_> = verified
                .iter()
                .map(|v| serde_json::to_value(&v.payload).unwrap_or_default())
                .collect();
            line.extra.insert("signatures".into(), payloads.into());
        }
        Check::Attestation {
            key,
            predicate_type,
        } => {
            let layers = store::attestation_layers(&opened.place, &manifest.digest)
                .await
                .map_err(images::fail)?;
            let verified = attestation::verify_all(
                &image,
                key,
                &layers,
                &manifest.digest,
                predicate_type.as_deref(),
            )
            .map_err(cosign_failure)?;
            if let Some(identity) = &common.check_identity {
                let named = verified
                    .iter()
                    .any(|v| v.statement.subject.iter().any(|s| &s.name == identity));
                if !named {
                    return Err(images::fail(
                        ocikit::cosign::CosignError::NoMatchingSignature {
                            image,
                            reasons: vec![format!("no attestation subject is named {identity}")],
                        }
                        .into(),
                    ));
                }
            }
            let statements: Vec<_> = verified
                .iter()
                .map(|v| serde_json::to_value(&v.statement).unwrap_or_default())
                .collect();
            line.extra.insert("attestations".into(), statements.into());
        }
        Check::Policy {
            policies,
            allow_unmatched,
        } => {
            let evidence = Evidence {
                signatures: store::signature_layers(&opened.place, &manifest.digest)
                    .await
                    .map_err(images::fail)?,
                attestations: store::attestation_layers(&opened.place, &manifest.digest)
                    .await
                    .map_err(images::fail)?,
            };
            let name = policy_name(&work.reference, &manifest.digest);
            let decision = policies.evaluate(&name, &manifest.digest, &evidence, *allow_unmatched);
            if !common.output.quiet {
                for warning in &decision.warnings {
                    eprintln!("oci-verify: {image}: warning: {warning}");
                }
            }
            if !decision.allowed() {
                return Err(images::fail(
                    ocikit::cosign::CosignError::NoMatchingSignature {
                        image: name,
                        reasons: decision.denials.clone(),
                    }
                    .into(),
                ));
            }
            line.extra
                .insert("policies".into(), decision.passed.clone().into());
        }
    }
    if !common.output.quiet {
        eprintln!("oci-verify: {image}: verified {}", manifest.digest);
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        super::command().debug_assert();
    }
}

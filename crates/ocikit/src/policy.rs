//! Admission policies in sigstore's `ClusterImagePolicy` shape, so that the
//! policies a cluster already has for policy-controller load unchanged.
//!
//! ```yaml
//! apiVersion: policy.sigstore.dev/v1beta1
//! kind: ClusterImagePolicy
//! metadata: {name: signed-by-release-key}
//! spec:
//!   mode: enforce            # or warn
//!   images: [{glob: "registry.example.com/**"}]
//!   authorities:
//!     - key: {data: "-----BEGIN PUBLIC KEY-----…", hashAlgorithm: sha256}
//!     - key: {path: keys/cosign.pub}      # ocikit extension, relative to the policy file
//!       attestations: [{name: sbom, predicateType: spdxjson}]
//! ```
//!
//! Semantics, as policy-controller's: every policy whose glob matches the
//! image must pass; a policy passes when any one of its authorities does; an
//! authority passes when one signature verifies with its key (and, if it
//! lists attestations, one attestation of each predicate type verifies with
//! it too). A policy in `warn` mode only warns. An image that no policy
//! matches is denied unless the caller allows unmatched images. Several YAML
//! documents may share one file. Globs match the image's full name with
//! Docker Hub spelled `index.docker.io/library/x`: `*` is one or more
//! characters other than `/`, `**` one or more of any.
//!
//! What cannot be honoured without a cluster or a transparency log is refused
//! when the policy is loaded, with the reason, rather than silently ignored:
//! `secretRef` and `kms` keys, `keyless`, `source`, CUE/Rego `policy` blocks.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cosign::attestation::{self, PredicateType};
use crate::cosign::signature::{self, VerifyOptions};
use crate::cosign::{CosignError, PublicKey};
use crate::digest::Digest;
use crate::manifest::Descriptor;

/// Why a policy file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{path}: {reason}")]
    Read {
        /// The policy file.
        path: PathBuf,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// YAML that does not parse or has the wrong shape.
    #[error("{path}: document {document}: {reason}")]
    Yaml {
        /// The policy file.
        path: PathBuf,
        /// 1-based YAML document number.
        document: usize,
        /// What is wrong.
        reason: String,
    },
    /// A feature of ClusterImagePolicy ocikit cannot honour.
    #[error("{path}: policy {policy:?}: {feature} is not supported here ({why})")]
    Unsupported {
        /// The policy file.
        path: PathBuf,
        /// The policy's metadata.name.
        policy: String,
        /// The field.
        feature: String,
        /// Why, and what to use instead.
        why: String,
    },
    /// The file holds no ClusterImagePolicy at all.
    #[error("{0}: no ClusterImagePolicy documents found")]
    Empty(PathBuf),
}

/// How a failing policy is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deny the image.
    Enforce,
    /// Allow it, with a warning.
    Warn,
}

/// One authority: a key, and the attestation types it must also have signed.
#[derive(Debug, Clone)]
pub struct Authority {
    /// `name`, or `authority-N`.
    pub name: String,
    /// The verification key, or a static decision.
    pub rule: Rule,
    /// Predicate type URIs that need a verified attestation by the key.
    pub attestations: Vec<String>,
}

/// What an authority checks.
#[derive(Debug, Clone)]
pub enum Rule {
    /// A signature by this key.
    Key(PublicKey),
    /// `static: {action: pass|fail}`.
    Static(bool),
}

/// One ClusterImagePolicy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// metadata.name.
    pub name: String,
    /// spec.mode.
    pub mode: Mode,
    /// spec.images[].glob.
    pub globs: Vec<String>,
    /// spec.authorities.
    pub authorities: Vec<Authority>,
}

/// All policies of a file (or several files).
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// In file order.
    pub policies: Vec<Policy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: RawMeta,
    spec: Option<RawSpec>,
}

#[derive(Deserialize, Default)]
struct RawMeta {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(default)]
    images: Vec<RawImage>,
    #[serde(default)]
    authorities: Vec<RawAuthority>,
    mode: Option<String>,
    policy: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
struct RawImage {
    glob: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthority {
    name: Option<String>,
    key: Option<RawKey>,
    keyless: Option<serde_yaml::Value>,
    #[serde(rename = "static")]
    static_: Option<RawStatic>,
    source: Option<serde_yaml::Value>,
    #[serde(default)]
    attestations: Vec<RawAttestation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    data: Option<String>,
    path: Option<PathBuf>,
    secret_ref: Option<serde_yaml::Value>,
    kms: Option<String>,
    hash_algorithm: Option<String>,
}

#[derive(Deserialize)]
struct RawStatic {
    action: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAttestation {
    name: Option<String>,
    predicate_type: String,
    policy: Option<serde_yaml::Value>,
}

impl PolicySet {
    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<PolicySet, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|reason| PolicyError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        PolicySet::parse(&text, path)
    }

    /// Parses policy YAML; `path` names the file in errors and anchors
    /// relative `key.path`s.
    pub fn parse(text: &str, path: &Path) -> Result<PolicySet, PolicyError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let mut policies = Vec::new();
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let document_no = index + 1;
            let yaml_error = |reason: String| PolicyError::Yaml {
                path: path.to_path_buf(),
                document: document_no,
                reason,
            };
            let value =
                serde_yaml::Value::deserialize(document).map_err(|e| yaml_error(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let raw: RawDoc =
                serde_yaml::from_value(value).map_err(|e| yaml_error(e.to_string()))?;
            match (raw.api_version.as_deref(), raw.kind.as_deref()) {
                (
                    Some("policy.sigstore.dev/v1beta1" | "policy.sigstore.dev/v1alpha1"),
                    Some("ClusterImagePolicy"),
                ) => {}
                (api, kind) => {
                    return Err(yaml_error(format!(
                        "expected apiVersion policy.sigstore.dev/v1beta1 and kind ClusterImagePolicy, found {} {}",
                        api.unwrap_or("(none)"),
                        kind.unwrap_or("(none)")
                    )))
                }
            }
            let name = raw
                .metadata
                .name
                .unwrap_or_else(|| format!("policy-{document_no}"));
            let spec = raw.spec.ok_or_else(|| yaml_error("no spec".into()))?;
            policies.push(policy_from(spec, name, path, base, &yaml_error)?);
        }
        if policies.is_empty() {
            return Err(PolicyError::Empty(path.to_path_buf()));
        }
        Ok(PolicySet { policies })
    }

    /// The policies whose globs match `image` (a full name, see [`image_name`]).
    pub fn matching(&self, image: &str) -> Vec<&Policy> {
        self.policies
            .iter()
            .filter(|p| p.globs.iter().any(|g| glob_match(g, image)))
            .collect()
    }
}

fn policy_from(
    spec: RawSpec,
    name: String,
    path: &Path,
    base: &Path,
    yaml_error: &dyn Fn(String) -> PolicyError,
) -> Result<Policy, PolicyError> {
    let unsupported = |feature: &str, why: &str| PolicyError::Unsupported {
        path: path.to_path_buf(),
        policy: name.clone(),
        feature: feature.to_owned(),
        why: why.to_owned(),
    };
    if spec.policy.is_some() {
        return Err(unsupported(
            "spec.policy (CUE/Rego)",
            "ocikit evaluates keys and attestation types only",
        ));
    }
    let mode = match spec.mode.as_deref() {
        None | Some("enforce") => Mode::Enforce,
        Some("warn") => Mode::Warn,
        Some(other) => {
            return Err(yaml_error(format!(
                "spec.mode {other:?}: expected enforce or warn"
            )))
        }
    };
    if spec.images.is_empty() {
        return Err(yaml_error(
            "spec.images is empty: nothing would match".into(),
        ));
    }
    let mut globs = Vec::new();
    for image in spec.images {
        if image.glob.is_empty()
            || !image
                .glob
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:/*.@".contains(c))
        {
            return Err(yaml_error(format!("invalid glob {:?}", image.glob)));
        }
        globs.push(image.glob);
    }
    if spec.authorities.is_empty() {
        return Err(yaml_error("spec.authorities is empty".into()));
    }
    let mut authorities = Vec::new();
    for (i, raw) in spec.authorities.into_iter().enumerate() {
        let authority_name = raw.name.unwrap_or_else(|| format!("authority-{i}"));
        if raw.keyless.is_some() {
            return Err(unsupported(
                "keyless",
                "there is no Fulcio or Rekor here; use a key authority",
            ));
        }
        if raw.source.is_some() {
            return Err(unsupported(
                "source",
                "signatures are read from the image's own repository",
            ));
        }
        let rule = match (raw.key, raw.static_) {
            (Some(key), None) => Rule::Key(load_key(key, base, &unsupported, yaml_error)?),
            (None, Some(s)) => match s.action.as_str() {
                "pass" => Rule::Static(true),
                "fail" => Rule::Static(false),
                other => {
                    return Err(yaml_error(format!(
                        "static.action {other:?}: expected pass or fail"
                    )))
                }
            },
            _ => {
                return Err(yaml_error(format!(
                    "authority {authority_name}: needs exactly one of key or static"
                )))
            }
        };
        let mut attestations = Vec::new();
        for a in raw.attestations {
            if a.policy.is_some() {
                return Err(unsupported(
                    "attestations[].policy (CUE/Rego)",
                    "only the presence of a verified attestation of the predicate type is checked",
                ));
            }
            let kind = PredicateType::parse(&a.predicate_type).map_err(|e| {
                yaml_error(format!("attestation {}: {e}", a.name.unwrap_or_default()))
            })?;
            attestations.push(kind.uri().to_owned());
        }
        authorities.push(Authority {
            name: authority_name,
            rule,
            attestations,
        });
    }
    Ok(Policy {
        name,
        mode,
        globs,
        authorities,
    })
}

fn load_key(
    key: RawKey,
    base: &Path,
    unsupported: &dyn Fn(&str, &str) -> PolicyError,
    yaml_error: &dyn Fn(String) -> PolicyError,
) -> Result<PublicKey, PolicyError> {
    if key.secret_ref.is_some() {
        return Err(unsupported(
            "key.secretRef",
            "there is no Kubernetes API here; put the PEM in key.data or key.path",
        ));
    }
    if key.kms.is_some() {
        return Err(unsupported(
            "key.kms",
            "no KMS client here; export the public key into key.data",
        ));
    }
    match key.hash_algorithm.as_deref() {
        None | Some("sha256") => {}
        Some(other) => {
            return Err(unsupported(
                &format!("key.hashAlgorithm {other}"),
                "cosign ECDSA P-256 keys sign SHA-256 digests",
            ))
        }
    }
    let pem = match (key.data, key.path) {
        (Some(data), None) => data.into_bytes(),
        (None, Some(path)) => {
            let path = base.join(path);
            std::fs::read(&path)
                .map_err(|e| yaml_error(format!("key.path {}: {e}", path.display())))?
        }
        _ => return Err(yaml_error("key needs exactly one of data or path".into())),
    };
    PublicKey::from_pem(&pem).map_err(|e| yaml_error(format!("key: {e}")))
}

/// The name globs match against: `host/repo:tag` or `host/repo@digest`,
/// Docker Hub as `index.docker.io/library/x` (policy-controller's `ref.Name()`).
pub fn image_name(
    registry: &str,
    repository: &str,
    tag: Option<&str>,
    digest: Option<&Digest>,
) -> String {
    let repo = crate::cosign::payload::docker_reference(registry, repository);
    match (digest, tag) {
        (Some(d), _) => format!("{repo}@{d}"),
        (None, Some(t)) => format!("{repo}:{t}"),
        (None, None) => format!("{repo}:latest"),
    }
}

/// policy-controller's glob: `*` matches one or more non-`/` characters,
/// `**` one or more of any, everything else itself; the whole name must match.
/// The bare globs `*` and `*/*` mean Docker Hub's, as policy-controller reads them.
pub fn glob_match(glob: &str, image: &str) -> bool {
    let glob = match glob {
        "*" => "index.docker.io/library/*",
        "*/*" => "index.docker.io/*/*",
        g => g,
    };
    matches(glob.as_bytes(), image.as_bytes())
}

fn matches(glob: &[u8], name: &[u8]) -> bool {
    match glob {
        [] => name.is_empty(),
        [b'*', b'*', rest @ ..] => (1..=name.len()).any(|n| matches(rest, &name[n..])),
        [b'*', rest @ ..] => {
            let run = name.iter().take_while(|&&c| c != b'/').count();
            (1..=run).any(|n| matches(rest, &name[n..]))
        }
        [c, rest @ ..] => name.first() == Some(c) && matches(rest, &name[1..]),
    }
}

/// The signatures and attestations fetched for one image, for [`PolicySet::evaluate`].
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Simple-signing layers of the `.sig` image.
    pub signatures: Vec<(Descriptor, Vec<u8>)>,
    /// DSSE layers of the `.att` image.
    pub attestations: Vec<(Descriptor, Vec<u8>)>,
}

/// The outcome of evaluating policies for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Names of the policies that matched and passed.
    pub passed: Vec<String>,
    /// Failures of `warn`-mode policies (the image is still allowed).
    pub warnings: Vec<String>,
    /// Failures of `enforce`-mode policies: the image is denied if any.
    pub denials: Vec<String>,
}

impl Decision {
    /// Whether the image is admitted.
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }
}

impl PolicySet {
    /// Evaluates the policies matching `image` (see [`image_name`]) whose
    /// manifest digest is `digest`, against the fetched evidence.
    pub fn evaluate(
        &self,
        image: &str,
        digest: &Digest,
        evidence: &Evidence,
        allow_unmatched: bool,
    ) -> Decision {
        let mut decision = Decision {
            passed: Vec::new(),
            warnings: Vec::new(),
            denials: Vec::new(),
        };
        let matching = self.matching(image);
        if matching.is_empty() {
            if !allow_unmatched {
                decision.denials.push(format!(
                    "no policy matches {image} (add a policy with a matching glob, or allow unmatched images)"
                ));
            }
            return decision;
        }
        for policy in matching {
            let mut reasons = Vec::new();
            let passed = policy.authorities.iter().any(|authority| {
                match check_authority(authority, image, digest, evidence) {
                    Ok(()) => true,
                    Err(e) => {
                        reasons.push(format!("authority {}: {e}", authority.name));
                        false
                    }
                }
            });
            if passed {
                decision.passed.push(policy.name.clone());
                continue;
            }
            let message = format!("policy {} failed: {}", policy.name, reasons.join("; "));
            match policy.mode {
                Mode::Enforce => decision.denials.push(message),
                Mode::Warn => decision.warnings.push(message),
            }
        }
        decision
    }
}

fn check_authority(
    authority: &Authority,
    image: &str,
    digest: &Digest,
    evidence: &Evidence,
) -> Result<(), CosignError> {
    let key = match &authority.rule {
        Rule::Static(true) => return Ok(()),
        Rule::Static(false) => {
            return Err(CosignError::NoMatchingSignature {
                image: image.to_owned(),
                reasons: vec!["static action fail".into()],
            })
        }
        Rule::Key(key) => key,
    };
    signature::verify_all(
        image,
        key,
        &evidence.signatures,
        digest,
        &VerifyOptions::default(),
    )?;
    for predicate_type in &authority.attestations {
        attestation::verify_all(
            image,
            key,
            &evidence.attestations,
            digest,
            Some(predicate_type),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::payload::SimpleSigning;
    use crate::cosign::signature::SignatureLayer;
    use crate::cosign::PrivateKey;

    #[test]
    fn globs_match_as_policy_controller() {
        let hub = image_name("docker.io", "alpine", Some("3.19"), None);
        assert_eq!(hub, "index.docker.io/library/alpine:3.19");
        for (glob, image, want) in [
            ("127.0.0.1:5000/**", "127.0.0.1:5000/team/app:1.0", true),
            ("127.0.0.1:5000/*", "127.0.0.1:5000/app:1.0", true),
            ("127.0.0.1:5000/*", "127.0.0.1:5000/team/app:1.0", false),
            ("127.0.0.1:5000/app*", "127.0.0.1:5000/app@sha256:abc", true),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app:1.0", false),
            ("127.0.0.1:5000/app:**", "127.0.0.1:5000/app:1.0", true),
            ("*", hub.as_str(), true),
            ("*/*", "index.docker.io/me/app:1", true),
            ("ghcr.io/**", hub.as_str(), false),
        ] {
            assert_eq!(glob_match(glob, image), want, "{glob} vs {image}");
        }
    }

    fn key_yaml(key: &PrivateKey) -> String {
        let pem = key.public_key().to_pem().unwrap();
        pem.lines().map(|l| format!("          {l}\n")).collect()
    }

    #[test]
    fn every_matching_policy_must_pass_any_authority_suffices() {
        let release = PrivateKey::generate();
        let other = PrivateKey::generate();
        let yaml = format!(
            r#"
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {{name: release}}
spec:
  images: [{{glob: "127.0.0.1:5000/**"}}]
  authorities:
    - name: other
      key:
        hashAlgorithm: sha256
        data: |
{}    - name: release
      key:
        data: |
{}---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {{name: apps-warn}}
spec:
  mode: warn
  images: [{{glob: "127.0.0.1:5000/app*"}}]
  authorities:
    - key:
        data: |
{}"#,
            key_yaml(&other),
            key_yaml(&release),
            key_yaml(&other)
        );
        let set = PolicySet::parse(&yaml, Path::new("policy.yaml")).unwrap();
        assert_eq!(set.policies.len(), 2);
        let digest = Digest::sha256_of(b"image");
        let layer = SignatureLayer::sign(
            &release,
            SimpleSigning::new("127.0.0.1:5000/app", &digest, &Default::default()).to_bytes(),
        );
        let evidence = Evidence {
            signatures: vec![(layer.descriptor, layer.payload)],
            attestations: vec![],
        };
        let image = format!("127.0.0.1:5000/app@{digest}");
        let decision = set.evaluate(&image, &digest, &evidence, false);
        assert!(decision.allowed(), "{decision:?}");
        assert_eq!(decision.passed, vec!["release"]);
        assert_eq!(decision.warnings.len(), 1);
        assert!(decision.warnings[0]
            .starts_with("policy apps-warn failed: authority authority-0: no matching signatures"));

        let unsigned = set.evaluate(&image, &digest, &Evidence::default(), false);
        assert!(!unsigned.allowed());
        assert!(
            unsigned.denials[0].contains("no signatures found"),
            "{unsigned:?}"
        );

        let elsewhere = set.evaluate("ghcr.io/x/y:1", &digest, &evidence, false);
        assert!(elsewhere.denials[0].starts_with("no policy matches ghcr.io/x/y:1"));
        assert!(set
            .evaluate("ghcr.io/x/y:1", &digest, &evidence, true)
            .allowed());
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let head = "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: p}\nspec:\n  images: [{glob: \"**\"}]\n";
        for (body, want) in [
            (
                "  authorities: [{key: {secretRef: {name: s}}}]\n",
                "key.secretRef is not supported here",
            ),
            (
                "  authorities: [{key: {kms: \"awskms:///x\"}}]\n",
                "key.kms is not supported here",
            ),
            (
                "  authorities: [{keyless: {url: \"https://fulcio\"}}]\n",
                "keyless is not supported here",
            ),
            (
                "  authorities: [{static: {action: pass}}]\n  policy: {type: cue}\n",
                "spec.policy (CUE/Rego) is not supported here",
            ),
            (
                "  authorities: [{key: {data: \"nope\"}}]\n",
                "document 1: key: malformed PEM",
            ),
            (
                "  authorities: [{key: {data: x, hashAlgorithm: sha512}}]\n",
                "key.hashAlgorithm sha512 is not supported",
            ),
            ("  authorities: []\n", "spec.authorities is empty"),
            (
                "  mode: audit\n  authorities: [{static: {action: pass}}]\n",
                "spec.mode \"audit\"",
            ),
        ] {
            let err = PolicySet::parse(&format!("{head}{body}"), Path::new("p.yaml")).unwrap_err();
            assert!(err.to_string().contains(want), "want {want:?}: {err}");
            assert!(err.to_string().starts_with("p.yaml: "), "{err}");
        }
        let err =
            PolicySet::parse("apiVersion: v1\nkind: ConfigMap\n", Path::new("p.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected apiVersion policy.sigstore.dev/v1beta1"),
            "{err}"
        );
        let err = PolicySet::parse("", Path::new("p.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.yaml: no ClusterImagePolicy documents found"
        );
        let err = PolicySet::parse("a: [", Path::new("p.yaml")).unwrap_err();
        assert!(err.to_string().starts_with("p.yaml: document 1:"), "{err}");
    }

    #[test]
    fn static_authorities_and_key_paths() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate();
        std::fs::write(dir.path().join("k.pub"), key.public_key().to_pem().unwrap()).unwrap();
        let yaml = "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nspec:\n  images: [{glob: \"**\"}]\n  authorities: [{key: {path: k.pub}}, {static: {action: fail}}]\n";
        let set = PolicySet::parse(yaml, &dir.path().join("policy.yaml")).unwrap();
        assert!(
            matches!(&set.policies[0].authorities[0].rule, Rule::Key(k) if *k == key.public_key())
        );
        let denied = set.evaluate(
            "r/x:1",
            &Digest::sha256_of(b"i"),
            &Evidence::default(),
            false,
        );
        assert!(
            denied.denials[0].contains(
                "authority authority-1: no matching signatures for r/x:1:\n  - static action fail"
            ),
            "{denied:?}"
        );
    }
}

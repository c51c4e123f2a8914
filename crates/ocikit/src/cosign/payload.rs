//! cosign's simple-signing payload: the JSON claim a container signature signs.
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"index.docker.io/library/alpine"},
//!              "image":{"docker-manifest-digest":"sha256:…"},
//!              "type":"cosign container image signature"},
//!  "optional":null}
//! ```
//!
//! Written byte for byte as cosign's Go encoder does (see [`super::gojson`]):
//! fields in this order, `optional` the `-a` annotations with sorted keys or
//! `null` when there are none, `<>&` escaped. The docker reference is the
//! repository without tag or digest, with Docker Hub spelled
//! `index.docker.io/library/x` as go-containerregistry names it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::gojson::{self, SortedMap};
use super::CosignError;
use crate::digest::Digest;

/// The `critical.type` of a container image signature.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// A parsed (or to-be-written) simple-signing payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimpleSigning {
    /// The claims a verifier must check.
    pub critical: Critical,
    /// Free-form annotations (`-a key=value`), or `null`.
    pub optional: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The `critical` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Critical {
    /// Which repository the signer meant.
    pub identity: Identity,
    /// Which manifest digest is signed.
    pub image: Image,
    /// Always [`SIMPLE_SIGNING_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
}

/// `critical.identity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Repository name, without tag or digest.
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

/// `critical.image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The signed manifest digest.
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    /// The claim for `digest` in repository `docker_reference`, with
    /// annotations (none gives `"optional":null`, as cosign).
    pub fn new(
        docker_reference: &str,
        digest: &Digest,
        annotations: &BTreeMap<String, String>,
    ) -> SimpleSigning {
        let optional = (!annotations.is_empty()).then(|| {
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        });
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_owned(),
                },
                image: Image {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: SIMPLE_SIGNING_TYPE.to_owned(),
            },
            optional,
        }
    }

    /// The exact bytes cosign writes for this claim.
    pub fn to_bytes(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Wire<'a> {
            critical: &'a Critical,
            optional: Option<SortedMap<'a>>,
        }
        let wire = Wire {
            critical: &self.critical,
            optional: self.optional.as_ref().map(SortedMap),
        };
        // Serialising plain strings and maps cannot fail.
        gojson::to_vec(&wire).unwrap_or_default()
    }

    /// Parses payload bytes, checking that they are a container signature.
    pub fn parse(bytes: &[u8]) -> Result<SimpleSigning, CosignError> {
        let parsed: SimpleSigning =
            serde_json::from_slice(bytes).map_err(|e| CosignError::Json {
                what: "simple-signing payload",
                reason: e.to_string(),
            })?;
        if parsed.critical.kind != SIMPLE_SIGNING_TYPE {
            return Err(CosignError::Json {
                what: "simple-signing payload",
                reason: format!(
                    "critical.type is {:?}, expected {SIMPLE_SIGNING_TYPE:?}",
                    parsed.critical.kind
                ),
            });
        }
        Ok(parsed)
    }

    /// The annotation `key`, if present as a string.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.optional.as_ref()?.get(key)?.as_str()
    }
}

/// The repository name as cosign writes it in `docker-reference`: Docker Hub
/// (`docker.io`, `index.docker.io`, `registry-1.docker.io`) becomes
/// `index.docker.io`, and a one-part Hub name gains `library/`.
pub fn docker_reference(registry: &str, repository: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            if repository.contains('/') {
                format!("index.docker.io/{repository}")
            } else {
                format!("index.docker.io/library/{repository}")
            }
        }
        other => format!("{other}/{repository}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"
            .parse()
            .unwrap()
    }

    #[test]
    fn writes_cosign_bytes() {
        let none = SimpleSigning::new(
            "registry-testing.svc.lan/busybox",
            &digest(),
            &BTreeMap::new(),
        );
        assert_eq!(
            String::from_utf8(none.to_bytes()).unwrap(),
            include_str!("testdata/busybox.payload.json").trim_end()
        );
        let annotations: BTreeMap<String, String> = [
            ("zeta".to_owned(), "last".to_owned()),
            ("html".to_owned(), "<b>&amp;</b>".to_owned()),
        ]
        .into();
        let with = SimpleSigning::new("index.docker.io/library/alpine", &digest(), &annotations);
        assert_eq!(
            String::from_utf8(with.to_bytes()).unwrap(),
            concat!(
                r#"{"critical":{"identity":{"docker-reference":"index.docker.io/library/alpine"},"#,
                r#""image":{"docker-manifest-digest":"sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"},"#,
                r#""type":"cosign container image signature"},"#,
                r#""optional":{"html":"\u003cb\u003e\u0026amp;\u003c/b\u003e","zeta":"last"}}"#
            )
        );
        let parsed = SimpleSigning::parse(&with.to_bytes()).unwrap();
        assert_eq!(parsed, with);
        assert_eq!(parsed.annotation("html"), Some("<b>&amp;</b>"));
    }

    #[test]
    fn names_docker_hub_as_cosign() {
        for (registry, repo, want) in [
            ("docker.io", "alpine", "index.docker.io/library/alpine"),
            (
                "docker.io",
                "library/alpine",
                "index.docker.io/library/alpine",
            ),
            ("index.docker.io", "me/app", "index.docker.io/me/app"),
            ("127.0.0.1:5000", "app", "127.0.0.1:5000/app"),
            ("ghcr.io", "org/team/app", "ghcr.io/org/team/app"),
        ] {
            assert_eq!(docker_reference(registry, repo), want);
        }
    }

    #[test]
    fn rejects_other_payloads() {
        for (input, want) in [
            (&b"{"[..], "malformed simple-signing payload JSON"),
            (br#"{"critical":{}}"#, "missing field"),
            (
                br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"d"},"type":"other"},"optional":null}"#,
                "critical.type is \"other\"",
            ),
        ] {
            let err = SimpleSigning::parse(input).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
    }
}

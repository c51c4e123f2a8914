//! In-toto attestations as cosign makes them: a statement about the image
//! digest, in a DSSE envelope signed over its PAE, stored as a layer of the
//! `sha256-<hex>.att` image.
//!
//! The statement is `{"_type":"https://in-toto.io/Statement/v0.1",
//! "predicateType":…,"subject":[{"name":REPO,"digest":{"sha256":HEX}}],
//! "predicate":…}` (cosign's field order). `--type` names map to predicate
//! type URIs as in cosign's `options.PredicateTypeMap`; `custom` wraps the
//! file as `{"Data":"<file text>","Timestamp":"<RFC 3339>"}`, `spdx` embeds the
//! file as a string, the others embed the file's JSON (re-encoded with sorted
//! keys, where cosign would re-encode through its Go structs: same content,
//! possibly other key order; the signature covers our bytes either way).
//!
//! The envelope is `{"payloadType":"application/vnd.in-toto+json",
//! "payload":B64,"signatures":[{"keyid":"","sig":B64}]}`, the signature being
//! ECDSA P-256/SHA-256 DER over `PAE(payloadType, payload)` =
//! `"DSSEv1 <len> <type> <len> <payload>"`. The layer's media type is
//! `application/vnd.dsse.envelope.v1+json` with annotations `predicateType`
//! and an empty `dev.cosignproject.cosign/signature`, as cosign writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::gojson::{self, Sorted};
use super::keys::{PrivateKey, PublicKey};
use super::signature::{SignatureLayer, SIGNATURE_ANNOTATION};
use super::{b64_decode, b64_encode, CosignError};
use crate::digest::{Algorithm, Digest};
use crate::manifest::Descriptor;

/// Media type of an attestation layer (a DSSE envelope).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Layer annotation naming the statement's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// The statement `_type` cosign writes.
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// The statement `_type` of in-toto attestation v1 (read too).
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The largest attestation envelope fetched (SBOMs can be large).
pub const MAX_ATTESTATION_PAYLOAD: u64 = 64 * 1024 * 1024;
/// An attestation in the OCI 1.1 form, as cosign's `WriteAttestationsReferrer`
/// writes it: `artifactType` the in-toto payload type (what policy engines
/// query for), config the OCI empty descriptor.
pub const ATTESTATION_REFERRER: super::signature::ReferrerKind = super::signature::ReferrerKind {
    artifact_type: IN_TOTO_PAYLOAD_TYPE,
    config_media_type: crate::manifest::OCI_EMPTY,
};

/// The legacy tag of an image's attestations: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &Digest) -> String {
    format!("{}.att", digest.to_tag_form())
}

/// A predicate type, by cosign's `--type` name or a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PredicateType {
    /// `custom`: the file as text in `{"Data","Timestamp"}`.
    Custom,
    /// `slsaprovenance` / `slsaprovenance02`: SLSA provenance v0.2.
    SlsaProvenance02,
    /// `slsaprovenance1`: SLSA provenance v1.
    SlsaProvenance1,
    /// `spdx`: an SPDX document embedded as text.
    Spdx,
    /// `spdxjson`: an SPDX JSON document.
    SpdxJson,
    /// `cyclonedx`: a CycloneDX JSON BOM.
    CycloneDx,
    /// `link`: an in-toto link.
    Link,
    /// `vuln`: cosign's vulnerability-scan predicate.
    Vuln,
    /// `openvex`: an OpenVEX document.
    OpenVex,
    /// Any other predicate type URI, with a JSON object predicate.
    Uri(String),
}

impl PredicateType {
    /// Parses a `--type` value as cosign does.
    pub fn parse(name: &str) -> Result<PredicateType, CosignError> {
        Ok(match name {
            "custom" => PredicateType::Custom,
            "slsaprovenance" | "slsaprovenance02" => PredicateType::SlsaProvenance02,
            "slsaprovenance1" => PredicateType::SlsaProvenance1,
            "spdx" => PredicateType::Spdx,
            "spdxjson" => PredicateType::SpdxJson,
            "cyclonedx" => PredicateType::CycloneDx,
            "link" => PredicateType::Link,
            "vuln" => PredicateType::Vuln,
            "openvex" => PredicateType::OpenVex,
            uri if is_uri(uri) => PredicateType::Uri(uri.to_owned()),
            other => return Err(CosignError::PredicateType(other.to_owned())),
        })
    }

    /// The predicate type URI written into the statement.
    pub fn uri(&self) -> &str {
        match self {
            PredicateType::Custom => "https://cosign.sigstore.dev/attestation/v1",
            PredicateType::SlsaProvenance02 => "https://slsa.dev/provenance/v0.2",
            PredicateType::SlsaProvenance1 => "https://slsa.dev/provenance/v1",
            PredicateType::Spdx | PredicateType::SpdxJson => "https://spdx.dev/Document",
            PredicateType::CycloneDx => "https://cyclonedx.org/bom",
            PredicateType::Link => "https://in-toto.io/Link/v1",
            PredicateType::Vuln => "https://cosign.sigstore.dev/attestation/vuln/v1",
            PredicateType::OpenVex => "https://openvex.dev/ns",
            PredicateType::Uri(uri) => uri,
        }
    }

    /// The predicate as it goes into the statement, from the file's bytes.
    fn predicate(&self, file: &[u8], timestamp: &str) -> Result<serde_json::Value, CosignError> {
        let kind = self.uri().to_owned();
        let text = || {
            String::from_utf8(file.to_vec()).map_err(|_| CosignError::Predicate {
                kind: kind.clone(),
                reason: "the predicate file is not UTF-8 text".into(),
            })
        };
        let json = || -> Result<serde_json::Value, CosignError> {
            serde_json::from_slice(file).map_err(|e| CosignError::Predicate {
                kind: kind.clone(),
                reason: format!("not JSON: {e}"),
            })
        };
        let object_with = |required: &[&str]| -> Result<serde_json::Value, CosignError> {
            let value = json()?;
            let object = value.as_object().ok_or_else(|| CosignError::Predicate {
                kind: kind.clone(),
                reason: "the predicate must be a JSON object".into(),
            })?;
            if let Some(missing) = required.iter().find(|f| !object.contains_key(**f)) {
                return Err(CosignError::Predicate {
                    kind: kind.clone(),
                    reason: format!("required field {missing} missing"),
                });
            }
            Ok(value)
        };
        match self {
            PredicateType::Custom => Ok(serde_json::json!({
                "Data": text()?,
                "Timestamp": timestamp,
            })),
            PredicateType::Spdx => Ok(serde_json::Value::String(text()?)),
            PredicateType::SpdxJson | PredicateType::CycloneDx => json(),
            PredicateType::SlsaProvenance02 => object_with(&["builder", "buildType"]),
            PredicateType::SlsaProvenance1 => object_with(&["buildDefinition", "runDetails"]),
            PredicateType::Link => object_with(&[
                "_type",
                "name",
                "materials",
                "products",
                "byproducts",
                "command",
                "environment",
            ]),
            PredicateType::Vuln | PredicateType::OpenVex | PredicateType::Uri(_) => {
                object_with(&[])
            }
        }
    }
}

fn is_uri(text: &str) -> bool {
    match text.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// An in-toto statement (v0.1 as cosign writes; v1 read too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// `https://in-toto.io/Statement/v0.1`.
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The predicate type URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// The predicate itself.
    pub predicate: serde_json::Value,
}

/// One statement subject: a name and its digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The repository.
    pub name: String,
    /// Digests by algorithm (`sha256` → hex).
    pub digest: BTreeMap<String, String>,
}

impl Statement {
    /// The statement cosign's `attest` would make for `digest` in `repository`
    /// (a [`super::payload::docker_reference`]) from the predicate file.
    pub fn new(
        kind: &PredicateType,
        predicate_file: &[u8],
        repository: &str,
        digest: &Digest,
        timestamp: &str,
    ) -> Result<Statement, CosignError> {
        Ok(Statement {
            statement_type: STATEMENT_V01.to_owned(),
            predicate_type: kind.uri().to_owned(),
            subject: vec![Subject {
                name: repository.to_owned(),
                digest: [(
                    digest.algorithm().as_str().to_owned(),
                    digest.hex().to_owned(),
                )]
                .into(),
            }],
            predicate: kind.predicate(predicate_file, timestamp)?,
        })
    }

    /// The statement's bytes, Go-encoded.
    pub fn to_bytes(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "_type")]
            statement_type: &'a str,
            #[serde(rename = "predicateType")]
            predicate_type: &'a str,
            subject: &'a [Subject],
            predicate: Sorted<'a>,
        }
        gojson::to_vec(&Wire {
            statement_type: &self.statement_type,
            predicate_type: &self.predicate_type,
            subject: &self.subject,
            predicate: Sorted(&self.predicate),
        })
        .unwrap_or_default()
    }

    /// Whether a subject names `digest`.
    pub fn covers(&self, digest: &Digest) -> bool {
        self.subject.iter().any(|s| {
            s.digest
                .get(digest.algorithm().as_str())
                .is_some_and(|hex| hex == digest.hex())
        })
    }
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload's type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload, base64.
    pub payload: String,
    /// Signatures over the PAE.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Key id (cosign writes `""`).
    #[serde(default)]
    pub keyid: String,
    /// Base64 ASN.1 DER signature.
    pub sig: String,
}

/// DSSE's pre-authentication encoding: what is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs an in-toto statement into an envelope.
    pub fn sign(key: &PrivateKey, statement: &[u8]) -> Envelope {
        let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement));
        Envelope {
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
            payload: b64_encode(statement),
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig: b64_encode(&sig),
            }],
        }
    }

    /// The envelope's bytes, as cosign writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        gojson::to_vec(self).unwrap_or_default()
    }

    /// Parses envelope bytes.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, CosignError> {
        serde_json::from_slice(bytes).map_err(|e| CosignError::Json {
            what: "DSSE envelope",
            reason: e.to_string(),
        })
    }

    /// The attestation layer cosign would push for this envelope.
    pub fn to_layer(&self, predicate_type: &str) -> SignatureLayer {
        SignatureLayer::with_annotations(
            DSSE_MEDIA_TYPE,
            self.to_bytes(),
            [
                (
                    PREDICATE_TYPE_ANNOTATION.to_owned(),
                    predicate_type.to_owned(),
                ),
                (SIGNATURE_ANNOTATION.to_owned(), String::new()),
            ]
            .into(),
        )
    }

    /// Verifies that one signature is `key`'s over the PAE, and returns the
    /// decoded statement.
    pub fn verify(&self, key: &PublicKey) -> Result<Statement, CosignError> {
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(CosignError::Json {
                what: "DSSE envelope",
                reason: format!(
                    "payloadType is {:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}",
                    self.payload_type
                ),
            });
        }
        let payload = b64_decode("DSSE payload", &self.payload)?;
        let message = pae(&self.payload_type, &payload);
        let mut last = CosignError::BadSignature;
        let verified = self
            .signatures
            .iter()
            .any(|s| match key.verify_base64(&message, &s.sig) {
                Ok(()) => true,
                Err(e) => {
                    last = e;
                    false
                }
            });
        if !verified {
            return Err(last);
        }
        serde_json::from_slice(&payload).map_err(|e| CosignError::Json {
            what: "in-toto statement",
            reason: e.to_string(),
        })
    }
}

/// An attestation that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAttestation {
    /// The statement.
    pub statement: Statement,
    /// The envelope layer's digest.
    pub layer: Digest,
}

/// Verifies one attestation layer for image `digest`: layer bytes, DSSE
/// signature, statement subject; and the predicate type if one is asked for.
pub fn verify_layer(
    key: &PublicKey,
    descriptor: &Descriptor,
    envelope: &[u8],
    digest: &Digest,
    predicate_type: Option<&str>,
) -> Result<VerifiedAttestation, CosignError> {
    descriptor
        .digest
        .verify(envelope)
        .map_err(|e| CosignError::Json {
            what: "attestation layer",
            reason: e.to_string(),
        })?;
    let statement = Envelope::parse(envelope)?.verify(key)?;
    if !statement.covers(digest) {
        let claimed = statement
            .subject
            .iter()
            .flat_map(|s| s.digest.iter().map(|(a, h)| format!("{a}:{h}")))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CosignError::ClaimMismatch {
            claim: "subject digest".into(),
            claimed,
            actual: digest.to_string(),
        });
    }
    if let Some(wanted) = predicate_type {
        if statement.predicate_type != wanted {
            return Err(CosignError::ClaimMismatch {
                claim: "predicateType".into(),
                claimed: statement.predicate_type.clone(),
                actual: wanted.to_owned(),
            });
        }
    }
    Ok(VerifiedAttestation {
        statement,
        layer: descriptor.digest.clone(),
    })
}

/// Verifies all attestation layers of `image`: those that pass, or exit-10 /
/// exit-12 errors as for signatures.
pub fn verify_all(
    image: &str,
    key: &PublicKey,
    layers: &[(Descriptor, Vec<u8>)],
    digest: &Digest,
    predicate_type: Option<&str>,
) -> Result<Vec<VerifiedAttestation>, CosignError> {
    if layers.is_empty() {
        return Err(CosignError::NoSignatures(image.to_owned()));
    }
    let mut verified = Vec::new();
    let mut reasons = Vec::new();
    for (descriptor, bytes) in layers {
        match verify_layer(key, descriptor, bytes, digest, predicate_type) {
            Ok(v) => verified.push(v),
            Err(e) => reasons.push(format!("{}: {e}", descriptor.digest)),
        }
    }
    if verified.is_empty() {
        return Err(CosignError::NoMatchingSignature {
            image: image.to_owned(),
            reasons,
        });
    }
    Ok(verified)
}

/// The sha256 algorithm name, for subjects.
pub const SUBJECT_ALGORITHM: Algorithm = Algorithm::Sha256;

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256_of(b"image")
    }

    #[test]
    fn maps_types_as_cosign() {
        for (name, uri) in [
            ("custom", "https://cosign.sigstore.dev/attestation/v1"),
            ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
            ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
            ("spdx", "https://spdx.dev/Document"),
            ("spdxjson", "https://spdx.dev/Document"),
            ("cyclonedx", "https://cyclonedx.org/bom"),
            ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
            ("https://example.com/mine/v1", "https://example.com/mine/v1"),
        ] {
            assert_eq!(PredicateType::parse(name).unwrap().uri(), uri);
        }
        let err = PredicateType::parse("sbom").unwrap_err();
        assert!(err.to_string().contains("unknown predicate type \"sbom\""));
    }

    #[test]
    fn custom_statement_is_cosign_shaped() {
        let statement = Statement::new(
            &PredicateType::Custom,
            b"hello <world>\n",
            "127.0.0.1:5000/app",
            &digest(),
            "2023-11-14T22:13:20Z",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(statement.to_bytes()).unwrap(),
            format!(
                concat!(
                    r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://cosign.sigstore.dev/attestation/v1","#,
                    r#""subject":[{{"name":"127.0.0.1:5000/app","digest":{{"sha256":"{}"}}}}],"#,
                    r#""predicate":{{"Data":"hello \u003cworld\u003e\n","Timestamp":"2023-11-14T22:13:20Z"}}}}"#
                ),
                digest().hex()
            )
        );
    }

    #[test]
    fn checks_predicates_like_cosign() {
        let slsa = PredicateType::SlsaProvenance02;
        let err = Statement::new(&slsa, br#"{"builder":{}}"#, "r", &digest(), "t").unwrap_err();
        assert!(
            err.to_string().contains("required field buildType missing"),
            "{err}"
        );
        let err =
            Statement::new(&PredicateType::CycloneDx, b"<xml/>", "r", &digest(), "t").unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        let spdx = Statement::new(
            &PredicateType::Spdx,
            b"SPDXVersion: SPDX-2.3",
            "r",
            &digest(),
            "t",
        )
        .unwrap();
        assert_eq!(spdx.predicate, serde_json::json!("SPDXVersion: SPDX-2.3"));
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn signs_and_verifies_envelopes() {
        let key = PrivateKey::generate();
        let kind = PredicateType::SlsaProvenance1;
        let statement = Statement::new(
            &kind,
            br#"{"buildDefinition":{"buildType":"x"},"runDetails":{}}"#,
            "r/app",
            &digest(),
            "t",
        )
        .unwrap();
        let layer = Envelope::sign(&key, &statement.to_bytes()).to_layer(kind.uri());
        assert_eq!(layer.descriptor.media_type, DSSE_MEDIA_TYPE);
        assert_eq!(
            layer.descriptor.annotation("predicateType"),
            Some(kind.uri())
        );
        assert_eq!(layer.descriptor.annotation(SIGNATURE_ANNOTATION), Some(""));
        let layers = [(layer.descriptor.clone(), layer.payload.clone())];
        let ok = verify_all(
            "img",
            &key.public_key(),
            &layers,
            &digest(),
            Some(kind.uri()),
        )
        .unwrap();
        assert_eq!(ok[0].statement, statement);

        let other = PrivateKey::generate().public_key();
        let wrong_digest = Digest::sha256_of(b"other");
        let mut tampered = Envelope::parse(&layer.payload).unwrap();
        tampered.payload = b64_encode(&statement.to_bytes()[1..]);
        let tampered = tampered.to_layer(kind.uri());
        for (key, layers, digest, kind, want) in [
            (
                &other,
                layers.clone(),
                digest(),
                None,
                "signature does not verify",
            ),
            (
                &key.public_key(),
                layers.clone(),
                wrong_digest,
                None,
                "claims subject digest",
            ),
            (
                &key.public_key(),
                layers.clone(),
                digest(),
                Some("https://spdx.dev/Document"),
                "claims predicateType",
            ),
            (
                &key.public_key(),
                [(tampered.descriptor, tampered.payload)],
                digest(),
                None,
                "signature does not verify",
            ),
            (
                &key.public_key(),
                [(layer.descriptor.clone(), b"{}".to_vec())],
                digest(),
                None,
                "digest mismatch",
            ),
        ] {
            let err = verify_all("img", key, &layers, &digest, kind).unwrap_err();
            assert_eq!(err.exit_code(), 12);
            assert!(err.to_string().contains(want), "want {want:?}: {err}");
        }
        let bad = SignatureLayer::with_annotations(
            DSSE_MEDIA_TYPE,
            b"{\"payloadType\":1}".to_vec(),
            BTreeMap::new(),
        );
        let err = verify_all(
            "img",
            &key.public_key(),
            &[(bad.descriptor, bad.payload)],
            &digest(),
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("malformed DSSE envelope JSON"),
            "{err}"
        );
    }
}

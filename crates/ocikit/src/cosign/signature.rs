//! Signatures as cosign stores them: one layer per signature in an image
//! tagged `sha256-<hex>.sig` (or, in the OCI 1.1 form, a referrer of the
//! image), and the checks a verifier makes on each.
//!
//! A signature layer is the simple-signing payload as a blob of media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`, with the base64 ASN.1
//! DER ECDSA signature in the layer annotation
//! `dev.cosignproject.cosign/signature`. The `.sig` image's config is the one
//! go-containerregistry writes for an appended image (empty platform, one
//! history entry and one diff_id per layer), so the manifest looks like one
//! cosign pushed. New signatures are appended; an identical layer (same
//! payload, same annotations) is not added twice.
//!
//! Verification (what `cosign verify --key` checks, without a transparency
//! log): the payload bytes match the layer digest, the signature verifies
//! with the key over those bytes, `docker-manifest-digest` equals the digest
//! being verified, every `-a` annotation is present with its value, and, if
//! asked, `docker-reference` names the expected repository. One layer must
//! pass all checks together.
//!
//! Bounds: a signature manifest of a hostile registry could list thousands
//! of layers or huge payloads; [`check_layers`] refuses those before anything
//! is fetched.

use std::collections::BTreeMap;

use serde::Serialize;

use super::keys::{PrivateKey, PublicKey};
use super::payload::SimpleSigning;
use super::{b64_encode, CosignError};
use crate::digest::Digest;
use crate::manifest::{self, Descriptor};

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `artifactType` of a signature in the OCI 1.1 referrers form.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The most signature layers read from one signature manifest (cosign's limit too).
pub const MAX_LAYERS: usize = 1000;
/// The largest simple-signing payload fetched (real ones are a few hundred bytes).
pub const MAX_SIGNATURE_PAYLOAD: u64 = 1024 * 1024;

/// The legacy tag of an image's signatures: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.to_tag_form())
}

/// A signature ready to store: the payload blob and its layer descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureLayer {
    /// The exact payload bytes (the blob).
    pub payload: Vec<u8>,
    /// Its layer descriptor, annotations included.
    pub descriptor: Descriptor,
}

impl SignatureLayer {
    /// Signs `payload` (simple-signing bytes) with `key`.
    pub fn sign(key: &PrivateKey, payload: Vec<u8>) -> SignatureLayer {
        let signature = b64_encode(&key.sign(&payload));
        SignatureLayer::with_annotations(
            SIMPLE_SIGNING_MEDIA_TYPE,
            payload,
            [(SIGNATURE_ANNOTATION.to_owned(), signature)].into(),
        )
    }

    /// A layer of any media type with the given annotations (attestations use
    /// this with the DSSE media type).
    pub fn with_annotations(
        media_type: &str,
        payload: Vec<u8>,
        annotations: BTreeMap<String, String>,
    ) -> SignatureLayer {
        let mut descriptor = Descriptor::new(
            media_type,
            Digest::sha256_of(&payload),
            payload.len() as u64,
        );
        descriptor.annotations = Some(annotations);
        SignatureLayer {
            payload,
            descriptor,
        }
    }
}

/// A signature image to push: manifest and config bytes (the layers' blobs
/// are the [`SignatureLayer`] payloads, and existing ones are already stored).
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureImage {
    /// The manifest bytes (OCI image manifest).
    pub manifest: Vec<u8>,
    /// The config blob bytes.
    pub config: Vec<u8>,
    /// The config's descriptor.
    pub config_descriptor: Descriptor,
    /// All layers the manifest lists.
    pub layers: Vec<Descriptor>,
}

impl SignatureImage {
    /// The manifest's digest.
    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a Descriptor>,
}

/// The config go-containerregistry writes for layers appended to an empty image.
fn ggcr_config(layers: &[Descriptor]) -> Vec<u8> {
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let history: Vec<_> = layers
        .iter()
        .map(|_| serde_json::json!({ "created": ZERO_TIME }))
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    #[derive(Serialize)]
    struct RootFs<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        diff_ids: Vec<String>,
    }
    #[derive(Serialize)]
    struct Config<'a> {
        architecture: &'a str,
        created: &'a str,
        history: Vec<serde_json::Value>,
        os: &'a str,
        rootfs: RootFs<'a>,
        config: serde_json::Map<String, serde_json::Value>,
    }
    let config = Config {
        architecture: "",
        created: ZERO_TIME,
        history,
        os: "",
        rootfs: RootFs {
            kind: "layers",
            diff_ids,
        },
        config: serde_json::Map::new(),
    };
    super::gojson::to_vec(&config).unwrap_or_default()
}

/// Builds a `.sig`/`.att` image listing `layers` in order.
pub fn signature_image(layers: Vec<Descriptor>) -> SignatureImage {
    let config = ggcr_config(&layers);
    let config_descriptor = Descriptor::new(
        manifest::OCI_CONFIG,
        Digest::sha256_of(&config),
        config.len() as u64,
    );
    let manifest = serde_json::to_vec(&WireManifest {
        schema_version: 2,
        media_type: manifest::OCI_MANIFEST,
        artifact_type: None,
        config: &config_descriptor,
        layers: &layers,
        subject: None,
    })
    .unwrap_or_default();
    SignatureImage {
        manifest,
        config,
        config_descriptor,
        layers,
    }
}

/// Appends `layer` to the signature image `existing` (its manifest bytes, if
/// the tag exists). `None` means an identical signature is already there and
/// nothing needs writing.
pub fn append(
    existing: Option<&[u8]>,
    layer: &Descriptor,
) -> Result<Option<SignatureImage>, CosignError> {
    let mut layers = match existing {
        None => Vec::new(),
        Some(bytes) => existing_layers(bytes)?,
    };
    if layers
        .iter()
        .any(|l| l.digest == layer.digest && l.annotations == layer.annotations)
    {
        return Ok(None);
    }
    if layers.len() >= MAX_LAYERS {
        return Err(CosignError::TooLarge {
            what: "signature manifest".into(),
            size: layers.len() as u64 + 1,
            limit: MAX_LAYERS as u64,
        });
    }
    layers.push(layer.clone());
    Ok(Some(signature_image(layers)))
}

fn existing_layers(bytes: &[u8]) -> Result<Vec<Descriptor>, CosignError> {
    let parsed = manifest::Manifest::parse(bytes, None).map_err(|e| CosignError::Json {
        what: "signature manifest",
        reason: e.to_string(),
    })?;
    match parsed.kind {
        manifest::ManifestKind::Image { layers, .. } => Ok(layers),
        manifest::ManifestKind::Index { .. } => Err(CosignError::Json {
            what: "signature manifest",
            reason: "it is an index, not an image manifest".into(),
        }),
    }
}

/// What kind of OCI 1.1 referrer to write: the `artifactType` readers
/// filter on, and the config's media type (content `{}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferrerKind {
    /// The manifest's `artifactType`.
    pub artifact_type: &'static str,
    /// The config descriptor's media type.
    pub config_media_type: &'static str,
}

/// A signature in the OCI 1.1 form, as `cosign sign
/// --registry-referrers-mode=oci-1-1` writes it: `artifactType` and the
/// config's media type both cosign's signature type.
pub const SIGNATURE_REFERRER: ReferrerKind = ReferrerKind {
    artifact_type: SIGNATURE_ARTIFACT_TYPE,
    config_media_type: SIGNATURE_ARTIFACT_TYPE,
};

/// The OCI 1.1 form: one manifest per signature (or attestation), with
/// `artifactType` and `subject` pointing at the signed image; the config is
/// `{}` of the kind's media type.
pub fn referrer_image(
    subject: &Descriptor,
    layer: &Descriptor,
    kind: ReferrerKind,
) -> SignatureImage {
    let config = b"{}".to_vec();
    let config_descriptor = Descriptor::new(
        kind.config_media_type,
        Digest::sha256_of(&config),
        config.len() as u64,
    );
    let subject = Descriptor::new(
        subject.media_type.clone(),
        subject.digest.clone(),
        subject.size,
    );
    let layers = vec![layer.clone()];
    let manifest = serde_json::to_vec(&WireManifest {
        schema_version: 2,
        media_type: manifest::OCI_MANIFEST,
        artifact_type: Some(kind.artifact_type),
        config: &config_descriptor,
        layers: &layers,
        subject: Some(&subject),
    })
    .unwrap_or_default();
    SignatureImage {
        manifest,
        config,
        config_descriptor,
        layers,
    }
}

/// The signature layers of a signature manifest, refusing hostile ones
/// (too many layers, payloads over `max_payload`) before any blob is fetched.
/// Layers of other media types are skipped, as cosign does.
pub fn check_layers(
    manifest_bytes: &[u8],
    media_type: &str,
    max_payload: u64,
) -> Result<Vec<Descriptor>, CosignError> {
    let layers = existing_layers(manifest_bytes)?;
    if layers.len() > MAX_LAYERS {
        return Err(CosignError::TooLarge {
            what: "signature manifest".into(),
            size: layers.len() as u64,
            limit: MAX_LAYERS as u64,
        });
    }
    let mut wanted = Vec::new();
    for layer in layers {
        if layer.media_type != media_type {
            continue;
        }
        if layer.size > max_payload {
            return Err(CosignError::TooLarge {
                what: format!("signature payload {}", layer.digest),
                size: layer.size,
                limit: max_payload,
            });
        }
        wanted.push(layer);
    }
    Ok(wanted)
}

/// What a verifier requires beyond a good signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Annotations (`-a k=v`) the payload's `optional` must contain.
    pub annotations: BTreeMap<String, String>,
    /// If set, `docker-reference` must equal it (`--check-identity`).
    pub identity: Option<String>,
}

/// A signature that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSignature {
    /// The parsed claim.
    pub payload: SimpleSigning,
    /// The base64 signature.
    pub signature: String,
    /// The payload layer's digest.
    pub layer: Digest,
}

/// Verifies one signature layer against `key` for the image `digest`.
pub fn verify_layer(
    key: &PublicKey,
    descriptor: &Descriptor,
    payload: &[u8],
    digest: &Digest,
    options: &VerifyOptions,
) -> Result<VerifiedSignature, CosignError> {
    descriptor
        .digest
        .verify(payload)
        .map_err(|e| CosignError::Json {
            what: "signature layer",
            reason: e.to_string(),
        })?;
    let signature =
        descriptor
            .annotation(SIGNATURE_ANNOTATION)
            .ok_or_else(|| CosignError::Json {
                what: "signature layer",
                reason: format!("no {SIGNATURE_ANNOTATION} annotation"),
            })?;
    key.verify_base64(payload, signature)?;
    let parsed = SimpleSigning::parse(payload)?;
    check_claims(&parsed, digest, options)?;
    Ok(VerifiedSignature {
        payload: parsed,
        signature: signature.to_owned(),
        layer: descriptor.digest.clone(),
    })
}

fn check_claims(
    payload: &SimpleSigning,
    digest: &Digest,
    options: &VerifyOptions,
) -> Result<(), CosignError> {
    let claimed = &payload.critical.image.docker_manifest_digest;
    if *claimed != digest.to_string() {
        return Err(CosignError::ClaimMismatch {
            claim: "docker-manifest-digest".into(),
            claimed: claimed.clone(),
            actual: digest.to_string(),
        });
    }
    if let Some(identity) = &options.identity {
        let claimed = &payload.critical.identity.docker_reference;
        if claimed != identity {
            return Err(CosignError::ClaimMismatch {
                claim: "docker-reference".into(),
                claimed: claimed.clone(),
                actual: identity.clone(),
            });
        }
    }
    for (key, value) in &options.annotations {
        match payload.optional.as_ref().and_then(|o| o.get(key)) {
            None => {
                return Err(CosignError::MissingAnnotation {
                    key: key.clone(),
                    value: value.clone(),
                })
            }
            Some(serde_json::Value::String(have)) if have == value => {}
            Some(other) => {
                return Err(CosignError::ClaimMismatch {
                    claim: format!("annotation {key}"),
                    claimed: other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_owned),
                    actual: value.clone(),
                })
            }
        }
    }
    Ok(())
}

/// Verifies every fetched signature layer of `image`; succeeds with those
/// that pass (at least one), else [`CosignError::NoSignatures`] (nothing to
/// check, exit 10) or [`CosignError::NoMatchingSignature`] with each
/// layer's reason (exit 12).
pub fn verify_all(
    image: &str,
    key: &PublicKey,
    layers: &[(Descriptor, Vec<u8>)],
    digest: &Digest,
    options: &VerifyOptions,
) -> Result<Vec<VerifiedSignature>, CosignError> {
    if layers.is_empty() {
        return Err(CosignError::NoSignatures(image.to_owned()));
    }
    let mut verified = Vec::new();
    let mut reasons = Vec::new();
    for (descriptor, payload) in layers {
        match verify_layer(key, descriptor, payload, digest, options) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature made by cosign over testdata/busybox.payload.json, and its
    /// public key (from sigstore-rs's test data).
    const COSIGN_SIGNATURE: &str = "MEUCIQD6q/COgzOyW0YH1Dk+CCYSt4uAhm3FDHUwvPI55zwnlwIgE0ZK58ZOWpZw8YVmBapJhBqCfdPekIknimuO0xH8Jh8=";
    const COSIGN_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENptdY/l3nB0yqkXLBWkZWQwo6+cu
OSWS1X9vPavpiQOoTTGC0xX57OojUadxF1cdQmrsiReWg2Wn4FneJfa8xw==
-----END PUBLIC KEY-----
";
    const BUSYBOX: &str = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";

    fn cosign_layer() -> (Descriptor, Vec<u8>) {
        let payload = include_bytes!("testdata/busybox.payload.json")
            .trim_ascii_end()
            .to_vec();
        let layer = SignatureLayer::with_annotations(
            SIMPLE_SIGNING_MEDIA_TYPE,
            payload,
            [(SIGNATURE_ANNOTATION.to_owned(), COSIGN_SIGNATURE.to_owned())].into(),
        );
        (layer.descriptor, layer.payload)
    }

    #[test]
    fn verifies_a_signature_made_by_cosign() {
        let key = PublicKey::from_pem(COSIGN_PUBLIC_KEY.as_bytes()).unwrap();
        let digest: Digest = BUSYBOX.parse().unwrap();
        let options = VerifyOptions {
            identity: Some("registry-testing.svc.lan/busybox".into()),
            ..Default::default()
        };
        let verified = verify_all("busybox", &key, &[cosign_layer()], &digest, &options).unwrap();
        assert_eq!(
            verified[0].payload.critical.identity.docker_reference,
            "registry-testing.svc.lan/busybox"
        );
    }

    #[test]
    fn rejects_each_kind_of_bad_signature() {
        let cosign_key = PublicKey::from_pem(COSIGN_PUBLIC_KEY.as_bytes()).unwrap();
        let digest: Digest = BUSYBOX.parse().unwrap();
        let other_digest = Digest::sha256_of(b"another image");
        let (descriptor, payload) = cosign_layer();

        let mut one_byte = payload.clone();
        let at = one_byte.len() - 3;
        one_byte[at] = b'X';
        let changed = (
            Descriptor::new(
                SIMPLE_SIGNING_MEDIA_TYPE,
                Digest::sha256_of(&one_byte),
                one_byte.len() as u64,
            ),
            one_byte,
        );
        let changed = {
            let mut d = changed.0;
            d.annotations = descriptor.annotations.clone();
            (d, changed.1)
        };
        let other_key = PrivateKey::generate();
        let with_sig = |sig: &str| {
            let mut d = descriptor.clone();
            d.annotations = Some([(SIGNATURE_ANNOTATION.to_owned(), sig.to_owned())].into());
            (d, payload.clone())
        };
        let foreign = with_sig(&b64_encode(&other_key.sign(&payload)));
        // Signed by the right key, but not a simple-signing payload.
        let not_json = {
            let own = PrivateKey::generate();
            let layer = SignatureLayer::sign(&own, b"{not json".to_vec());
            (own.public_key(), (layer.descriptor, layer.payload))
        };
        let bad_b64 = with_sig("not base64!");
        let bad_der = with_sig(&b64_encode(b"\x30\x03\x02\x01"));
        let no_annotation = {
            let mut d = descriptor.clone();
            d.annotations = None;
            (d, payload.clone())
        };
        let wrong_blob = (descriptor.clone(), b"other bytes".to_vec());
        let annotated = VerifyOptions {
            annotations: [("env".to_owned(), "prod".to_owned())].into(),
            identity: None,
        };
        let identity = VerifyOptions {
            identity: Some("127.0.0.1:5000/busybox".into()),
            ..Default::default()
        };
        let plain = VerifyOptions::default();
        type Case<'a> = (
            (Descriptor, Vec<u8>),
            &'a Digest,
            &'a VerifyOptions,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (changed, &digest, &plain, "signature does not verify"),
            (foreign, &digest, &plain, "signature does not verify"),
            (
                cosign_layer(),
                &other_digest,
                &plain,
                "signature claims docker-manifest-digest",
            ),
            (
                cosign_layer(),
                &digest,
                &annotated,
                "signature lacks annotation env=\"prod\"",
            ),
            (
                cosign_layer(),
                &digest,
                &identity,
                "claims docker-reference \"registry-testing.svc.lan/busybox\"",
            ),
            (bad_b64, &digest, &plain, "malformed base64 in signature"),
            (bad_der, &digest, &plain, "not an ASN.1 DER ECDSA signature"),
            (
                no_annotation,
                &digest,
                &plain,
                "no dev.cosignproject.cosign/signature annotation",
            ),
            (wrong_blob, &digest, &plain, "digest mismatch"),
        ];
        for (layer, digest, options, want) in cases {
            let err = verify_all("img", &cosign_key, &[layer], digest, options).unwrap_err();
            assert_eq!(err.exit_code(), 12, "{err}");
            assert!(err.to_string().contains(want), "want {want:?} in: {err}");
        }
        let (own_key, not_json) = not_json;
        let err = verify_all("img", &own_key, &[not_json], &digest, &plain).unwrap_err();
        assert_eq!(err.exit_code(), 12, "{err}");
        assert!(
            err.to_string()
                .contains("malformed simple-signing payload JSON"),
            "{err}"
        );
        let err = verify_all("img", &cosign_key, &[], &digest, &plain).unwrap_err();
        assert_eq!(err.exit_code(), 10);
        assert_eq!(err.to_string(), "no signatures found for img");
    }

    #[test]
    fn annotation_values_must_match() {
        let key = PrivateKey::generate();
        let digest = Digest::sha256_of(b"image");
        let annotations = [("env".to_owned(), "a<b>&c".to_owned())].into();
        let payload = SimpleSigning::new("r/app", &digest, &annotations).to_bytes();
        assert!(String::from_utf8_lossy(&payload).contains(r#""env":"a\u003cb\u003e\u0026c""#));
        let layer = SignatureLayer::sign(&key, payload);
        let layers = [(layer.descriptor.clone(), layer.payload.clone())];
        let ok = VerifyOptions {
            annotations,
            identity: None,
        };
        verify_all("i", &key.public_key(), &layers, &digest, &ok).unwrap();
        let wrong = VerifyOptions {
            annotations: [("env".to_owned(), "prod".to_owned())].into(),
            identity: None,
        };
        let err = verify_all("i", &key.public_key(), &layers, &digest, &wrong).unwrap_err();
        assert!(
            err.to_string().contains("claims annotation env \"a<b>&c\""),
            "{err}"
        );
    }

    #[test]
    fn appends_without_duplicates_in_ggcr_shape() {
        let key = PrivateKey::generate();
        let digest = Digest::sha256_of(b"image");
        let first = SignatureLayer::sign(
            &key,
            SimpleSigning::new("r/app", &digest, &BTreeMap::new()).to_bytes(),
        );
        let image = append(None, &first.descriptor).unwrap().unwrap();
        let config = String::from_utf8(image.config.clone()).unwrap();
        assert_eq!(
            config,
            format!(
                r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{}}}}"#,
                first.descriptor.digest
            )
        );
        assert!(append(Some(&image.manifest), &first.descriptor)
            .unwrap()
            .is_none());
        let second = SignatureLayer::sign(
            &key,
            SimpleSigning::new("r/app", &digest, &[("a".to_owned(), "b".to_owned())].into())
                .to_bytes(),
        );
        let both = append(Some(&image.manifest), &second.descriptor)
            .unwrap()
            .unwrap();
        assert_eq!(
            both.layers,
            vec![first.descriptor.clone(), second.descriptor.clone()]
        );
        let parsed = manifest::Manifest::parse(&both.manifest, None).unwrap();
        assert_eq!(parsed.media_type, manifest::OCI_MANIFEST);
        assert_eq!(
            signature_tag(&digest),
            format!("sha256-{}.sig", digest.hex())
        );
    }

    #[test]
    fn bounds_hostile_signature_manifests() {
        let layer = Descriptor::new(SIMPLE_SIGNING_MEDIA_TYPE, Digest::sha256_of(b"x"), 1);
        let many = signature_image(vec![layer.clone(); 5000]);
        let err = check_layers(
            &many.manifest,
            SIMPLE_SIGNING_MEDIA_TYPE,
            MAX_SIGNATURE_PAYLOAD,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("signature manifest is too large: 5000 over the limit of 1000"),
            "{err}"
        );
        let huge = Descriptor::new(SIMPLE_SIGNING_MEDIA_TYPE, Digest::sha256_of(b"y"), 1 << 40);
        let image = signature_image(vec![layer, huge]);
        let err = check_layers(
            &image.manifest,
            SIMPLE_SIGNING_MEDIA_TYPE,
            MAX_SIGNATURE_PAYLOAD,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("over the limit of 1048576"),
            "{err}"
        );
    }

    #[test]
    fn referrer_form_follows_oci_1_1() {
        let subject = Descriptor::new(manifest::OCI_MANIFEST, Digest::sha256_of(b"m"), 1);
        let layer = Descriptor::new(SIMPLE_SIGNING_MEDIA_TYPE, Digest::sha256_of(b"p"), 1);
        let image = referrer_image(&subject, &layer, SIGNATURE_REFERRER);
        let parsed = manifest::Manifest::parse(&image.manifest, None).unwrap();
        assert_eq!(
            parsed.artifact_type.as_deref(),
            Some(SIGNATURE_ARTIFACT_TYPE)
        );
        assert_eq!(parsed.subject.unwrap().digest, subject.digest);
        assert_eq!(image.config, b"{}");
    }
}

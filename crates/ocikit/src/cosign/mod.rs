//! cosign's formats, byte for byte: key files, simple-signing payloads, signatures,
//! the `.sig`/`.att` signature images, in-toto attestations in DSSE envelopes.
//!
//! The point of this module is drop-in compatibility with cosign (and with
//! sigstore-rs, policy-controller and containers/image, which read the same
//! formats): a key made by `cosign generate-key-pair` signs here, a signature
//! made here verifies with `cosign verify --key … --insecure-ignore-tlog`.
//! Everything is pure data in, data out (no I/O besides the key-file helpers in
//! [`keys`]), so `oci-sign`, `oci-verify`, `oci-deploy` and the admission webhook
//! share one implementation and its tests.
//!
//! What is deliberately absent: Fulcio certificates, Rekor bundles and TUF. Keys
//! are the only trust root; signatures carry no transparency-log entry, as with
//! cosign's `--tlog-upload=false`.

pub mod attestation;
pub mod gojson;
pub mod keys;
pub mod payload;
pub mod places;
pub mod registry_store;
pub mod signature;
pub mod store;
pub mod time;

pub use attestation::{Envelope, PredicateType, Statement};
pub use keys::{PrivateKey, PublicKey};
pub use payload::SimpleSigning;
pub use signature::{SignatureLayer, VerifiedSignature, VerifyOptions};

/// Why a cosign key, payload, signature or attestation was rejected.
///
/// The messages name the thing and the reason; [`CosignError::exit_code`] maps
/// them onto cosign's exit codes so that `oci-verify` can stand in for
/// `cosign verify` in scripts.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    /// No PEM block, or not the label we can read.
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// The private key's encryption envelope is not the scrypt + secretbox JSON.
    #[error("malformed encrypted private key: {0}")]
    EncryptedKey(String),
    /// The scrypt parameters are not ones cosign writes (a guard against a
    /// tampered file that would make key derivation take forever).
    #[error("encrypted private key has unexpected scrypt parameters N={n}, r={r}, p={p} (cosign writes N=32768 or 65536, r=8, p=1)")]
    KdfParams {
        /// scrypt cost.
        n: u64,
        /// scrypt block size.
        r: u64,
        /// scrypt parallelism.
        p: u64,
    },
    /// secretbox authentication failed: nearly always the wrong password.
    #[error("decrypting the private key failed: wrong password? (set COSIGN_PASSWORD or type the password the key was created with)")]
    WrongPassword,
    /// The key material parsed, but is not an ECDSA P-256 key.
    #[error("unsupported key: {0} (ocikit signs and verifies with ECDSA P-256 keys, as `cosign generate-key-pair` makes them)")]
    UnsupportedKey(String),
    /// Base64 that does not decode.
    #[error("malformed base64 in {what}: {reason}")]
    Base64 {
        /// Which field.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A signature that is not ASN.1 DER ECDSA.
    #[error("malformed signature: not an ASN.1 DER ECDSA signature ({0})")]
    SignatureEncoding(String),
    /// The signature does not verify with the key over these bytes.
    #[error("signature does not verify with the given public key (signed by another key, or the payload was changed)")]
    BadSignature,
    /// JSON that does not parse or lacks a field.
    #[error("malformed {what} JSON: {reason}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// The payload's claim does not match what is being verified.
    #[error("signature claims {claim} {claimed:?}, but the image has {actual:?}")]
    ClaimMismatch {
        /// What is claimed (`docker-manifest-digest`, `docker-reference`, annotation `k`).
        claim: String,
        /// The value in the payload.
        claimed: String,
        /// The value expected.
        actual: String,
    },
    /// A required annotation is missing from the payload.
    #[error("signature lacks annotation {key}={value:?}")]
    MissingAnnotation {
        /// Annotation key.
        key: String,
        /// Expected value.
        value: String,
    },
    /// A signature manifest or payload over the limits (a hostile registry).
    #[error("{what} is too large: {size} over the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size (bytes or count).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An attestation type that is neither a cosign name nor a URI.
    #[error("unknown predicate type {0:?}: use custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex or a URI")]
    PredicateType(String),
    /// The predicate file does not fit its declared type.
    #[error("predicate does not fit type {kind}: {reason}")]
    Predicate {
        /// The predicate type name.
        kind: String,
        /// Why.
        reason: String,
    },
    /// The image has no signatures (or attestations) at all.
    #[error("no signatures found for {0}")]
    NoSignatures(String),
    /// Signatures exist, but none satisfies key, digest and annotations together.
    #[error("no matching signatures for {image}:\n{}", reasons.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"))]
    NoMatchingSignature {
        /// The image.
        image: String,
        /// Why each candidate failed.
        reasons: Vec<String>,
    },
    /// A key file could not be read or written.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong with it (part of the message, not a separate
        /// `source`, so an error chain names it once).
        reason: Box<CosignError>,
    },
    /// I/O on a key file.
    #[error("{0}")]
    Io(std::io::Error),
    /// A key file exists and `--force` was not given.
    #[error("{0} already exists; refusing to overwrite it (use --force to replace the key pair)")]
    Exists(std::path::PathBuf),
}

impl From<std::io::Error> for CosignError {
    fn from(e: std::io::Error) -> CosignError {
        CosignError::Io(e)
    }
}

impl CosignError {
    /// cosign's exit code for this error: 10 no signatures found, 12 no
    /// matching signature, 1 anything else (11, image not found, comes from
    /// the registry or layout, not from here).
    pub fn exit_code(&self) -> u8 {
        match self {
            CosignError::NoSignatures(_) => 10,
            CosignError::NoMatchingSignature { .. } => 12,
            CosignError::KeyFile { reason, .. } => reason.exit_code(),
            _ => 1,
        }
    }
}

/// Decodes standard base64 (with padding), naming the field on failure.
pub(crate) fn b64_decode(what: &'static str, text: &str) -> Result<Vec<u8>, CosignError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| CosignError::Base64 {
            what,
            reason: e.to_string(),
        })
}

/// Encodes standard base64 with padding, as Go's `encoding/base64.StdEncoding`.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

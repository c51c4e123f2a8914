//! cosign key files: `ENCRYPTED COSIGN PRIVATE KEY` and `PUBLIC KEY` PEM.
//!
//! The private key file is a PEM block whose body is JSON (the format of
//! go-tuf / go-securesystemslib `encrypted`, which cosign uses):
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<32 bytes b64>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<24 bytes b64>"},
//!  "ciphertext":"<b64 of secretbox(PKCS#8 DER of the ECDSA P-256 key)>"}
//! ```
//!
//! The secretbox key is scrypt(password, salt, N, r, p) of 32 bytes; the
//! ciphertext is NaCl's (Poly1305 tag first). We write label `ENCRYPTED COSIGN
//! PRIVATE KEY` and N = 2^15, which every cosign release and sigstore-rs read;
//! we read that and `ENCRYPTED SIGSTORE PRIVATE KEY` (cosign 2.x, sigstore-rs),
//! N = 2^15 or 2^16, and CRLF line endings (sigstore-rs writes them). Other
//! scrypt parameters are refused before deriving anything: a tampered N could
//! otherwise make loading a key take hours or all memory.
//!
//! The public key is PKIX (`SubjectPublicKeyInfo`) DER in a `PUBLIC KEY` block.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use super::{b64_decode, b64_encode, CosignError};

/// The private-key PEM label ocikit writes, read by every cosign release.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// The private-key PEM label cosign 2.x and sigstore-rs write; read too.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The public-key PEM label (PKIX).
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// scrypt cost ocikit writes (2^15), as cosign's `generate-key-pair`.
const SCRYPT_LOG_N: u8 = 15;
/// scrypt costs accepted when reading (2^15 legacy, 2^16 go-securesystemslib's standard).
const SCRYPT_ACCEPTED_LOG_N: [u8; 2] = [15, 16];
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Key files are a few hundred bytes; anything much larger is not a key.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// An ECDSA P-256 signing key, as cosign generates them.
#[derive(Clone)]
pub struct PrivateKey {
    key: SigningKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(ECDSA P-256, redacted)")
    }
}

/// An ECDSA P-256 verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl PrivateKey {
    /// A fresh key from the operating system's random generator.
    pub fn generate() -> PrivateKey {
        PrivateKey {
            key: SigningKey::random(&mut OsRng),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: *self.key.verifying_key(),
        }
    }

    /// Signs `message` with ECDSA P-256 over its SHA-256, returning the
    /// ASN.1 DER signature (what cosign base64-encodes into annotations).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    /// The PKCS#8 DER encoding (the plaintext inside the encrypted PEM).
    fn to_pkcs8_der(&self) -> Result<Vec<u8>, CosignError> {
        self.key
            .to_pkcs8_der()
            .map(|doc| doc.as_bytes().to_vec())
            .map_err(|e| CosignError::UnsupportedKey(e.to_string()))
    }

    /// The encrypted PEM file contents, cosign's `cosign.key`.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String, CosignError> {
        let json = encrypt(&self.to_pkcs8_der()?, password)?;
        Ok(pem_encode(COSIGN_PRIVATE_KEY_LABEL, &json))
    }

    /// Reads an encrypted private key PEM (either label, LF or CRLF).
    pub fn from_encrypted_pem(pem: &[u8], password: &[u8]) -> Result<PrivateKey, CosignError> {
        let (label, body) = pem_decode(pem)?;
        match label.as_str() {
            COSIGN_PRIVATE_KEY_LABEL | SIGSTORE_PRIVATE_KEY_LABEL => {}
            "PRIVATE KEY" | "EC PRIVATE KEY" => {
                return Err(CosignError::Pem(format!(
                    "{label:?} is an unencrypted key; cosign key files are encrypted \
                     (import it with `cosign import-key-pair --key FILE`)"
                )))
            }
            other => {
                return Err(CosignError::Pem(format!(
                    "expected an {COSIGN_PRIVATE_KEY_LABEL:?} block, found {other:?}"
                )))
            }
        }
        let der = decrypt(&body, password)?;
        let key = SigningKey::from_pkcs8_der(&der)
            .map_err(|e| CosignError::UnsupportedKey(format!("PKCS#8: {e}")))?;
        Ok(PrivateKey { key })
    }
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM (PKIX), LF or CRLF.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, CosignError> {
        let (label, der) = pem_decode(pem)?;
        if label != PUBLIC_KEY_LABEL {
            return Err(CosignError::Pem(format!(
                "expected a {PUBLIC_KEY_LABEL:?} block, found {label:?}"
            )));
        }
        PublicKey::from_der(&der)
    }

    /// Reads PKIX DER.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, CosignError> {
        let key = VerifyingKey::from_public_key_der(der)
            .map_err(|e| CosignError::UnsupportedKey(format!("PKIX public key: {e}")))?;
        Ok(PublicKey { key })
    }

    /// The PEM text, as cosign's `cosign.pub`.
    pub fn to_pem(&self) -> Result<String, CosignError> {
        let der = self
            .key
            .to_public_key_der()
            .map_err(|e| CosignError::UnsupportedKey(e.to_string()))?;
        Ok(pem_encode(PUBLIC_KEY_LABEL, der.as_bytes()))
    }

    /// Verifies an ASN.1 DER ECDSA signature over `message` (SHA-256).
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> Result<(), CosignError> {
        let signature = DerSignature::from_bytes(der_signature)
            .map_err(|e| CosignError::SignatureEncoding(e.to_string()))?;
        self.key
            .verify(message, &signature)
            .map_err(|_| CosignError::BadSignature)
    }

    /// Verifies a base64 DER signature, as stored in cosign's annotations.
    pub fn verify_base64(&self, message: &[u8], signature_b64: &str) -> Result<(), CosignError> {
        let der = b64_decode("signature", signature_b64)?;
        self.verify(message, &der)
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn derive_box_key(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
) -> Result<crypto_secretbox::Key, CosignError> {
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|e| CosignError::EncryptedKey(format!("scrypt parameters: {e}")))?;
    let mut key = crypto_secretbox::Key::default();
    scrypt::scrypt(password, salt, &params, &mut key)
        .map_err(|e| CosignError::EncryptedKey(format!("scrypt: {e}")))?;
    Ok(key)
}

/// Encrypts `plaintext` with `password` into go-tuf's `encrypted` JSON
/// (scrypt N=2^15 r=8 p=1, nacl/secretbox), as cosign does for its keys.
pub fn encrypt(plaintext: &[u8], password: &[u8]) -> Result<Vec<u8>, CosignError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let key = derive_box_key(password, &salt, SCRYPT_LOG_N)?;
    let ciphertext = XSalsa20Poly1305::new(&key)
        .encrypt(&nonce.into(), plaintext)
        .map_err(|_| CosignError::EncryptedKey("secretbox sealing failed".into()))?;
    let envelope = Envelope {
        kdf: Kdf {
            name: "scrypt".into(),
            params: KdfParams {
                n: 1 << SCRYPT_LOG_N,
                r: u64::from(SCRYPT_R),
                p: u64::from(SCRYPT_P),
            },
            salt: b64_encode(&salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: b64_encode(&nonce),
        },
        ciphertext: b64_encode(&ciphertext),
    };
    super::gojson::to_vec(&envelope).map_err(|e| CosignError::EncryptedKey(e.to_string()))
}

/// Decrypts go-tuf `encrypted` JSON; a failed secretbox open is
/// [`CosignError::WrongPassword`].
pub fn decrypt(json: &[u8], password: &[u8]) -> Result<Vec<u8>, CosignError> {
    let envelope: Envelope = serde_json::from_slice(json).map_err(|e| CosignError::Json {
        what: "encrypted private key",
        reason: e.to_string(),
    })?;
    if envelope.kdf.name != "scrypt" {
        return Err(CosignError::EncryptedKey(format!(
            "unknown kdf {:?} (expected \"scrypt\")",
            envelope.kdf.name
        )));
    }
    if envelope.cipher.name != "nacl/secretbox" {
        return Err(CosignError::EncryptedKey(format!(
            "unknown cipher {:?} (expected \"nacl/secretbox\")",
            envelope.cipher.name
        )));
    }
    let KdfParams { n, r, p } = envelope.kdf.params;
    let log_n = SCRYPT_ACCEPTED_LOG_N
        .into_iter()
        .find(|&l| n == 1 << l)
        .filter(|_| r == u64::from(SCRYPT_R) && p == u64::from(SCRYPT_P))
        .ok_or(CosignError::KdfParams { n, r, p })?;
    let salt = b64_decode("kdf salt", &envelope.kdf.salt)?;
    let nonce = b64_decode("cipher nonce", &envelope.cipher.nonce)?;
    if nonce.len() != NONCE_LEN {
        return Err(CosignError::EncryptedKey(format!(
            "nonce is {} bytes, expected {NONCE_LEN}",
            nonce.len()
        )));
    }
    let ciphertext = b64_decode("ciphertext", &envelope.ciphertext)?;
    let key = derive_box_key(password, &salt, log_n)?;
    XSalsa20Poly1305::new(&key)
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            ciphertext.as_slice(),
        )
        .map_err(|_| CosignError::WrongPassword)
}

/// Encodes one PEM block as Go's `encoding/pem` does (64-column lines, LF).
pub fn pem_encode(label: &str, body: &[u8]) -> String {
    let b64 = b64_encode(body);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block: its label and body. Tolerates CRLF, leading
/// text and surrounding whitespace; refuses PEM headers (`Proc-Type`), which
/// cosign never writes.
pub fn pem_decode(pem: &[u8]) -> Result<(String, Vec<u8>), CosignError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| CosignError::Pem("not text (binary DER? expected a PEM file)".into()))?;
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| CosignError::Pem("no \"-----BEGIN …-----\" line".into()))?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut closed = false;
    for line in lines {
        if line == end {
            closed = true;
            break;
        }
        if line.contains(':') {
            return Err(CosignError::Pem(format!(
                "PEM headers are not supported ({line:?})"
            )));
        }
        body.push_str(line);
    }
    if !closed {
        return Err(CosignError::Pem(format!("no {end:?} line")));
    }
    let bytes = b64_decode("PEM body", &body)?;
    Ok((label, bytes))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, CosignError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(CosignError::TooLarge {
            what: "key file".into(),
            size: bytes.len() as u64,
            limit: MAX_KEY_FILE,
        });
    }
    Ok(bytes)
}

fn at(path: &Path) -> impl FnOnce(CosignError) -> CosignError + '_ {
    move |source| CosignError::KeyFile {
        path: path.to_path_buf(),
        reason: Box::new(source),
    }
}

/// Loads and decrypts a private key file.
pub fn load_private_key(path: &Path, password: &[u8]) -> Result<PrivateKey, CosignError> {
    read_bounded(path)
        .and_then(|pem| PrivateKey::from_encrypted_pem(&pem, password))
        .map_err(at(path))
}

/// Loads a public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey, CosignError> {
    read_bounded(path)
        .and_then(|pem| PublicKey::from_pem(&pem))
        .map_err(at(path))
}

/// The two files of a key pair written by [`write_key_pair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairPaths {
    /// `<prefix>.key`, mode 0600.
    pub private_key: PathBuf,
    /// `<prefix>.pub`.
    pub public_key: PathBuf,
}

/// Generates a key pair and writes `<prefix>.key` (0600) and `<prefix>.pub`,
/// as `cosign generate-key-pair --output-key-prefix`. Each file is written to
/// a temporary file beside it and renamed into place, so a crash never leaves
/// half a key; without `force`, existing files are never replaced (checked
/// up front for both, and again atomically at the rename).
pub fn write_key_pair(
    prefix: &Path,
    password: &[u8],
    force: bool,
) -> Result<KeyPairPaths, CosignError> {
    let with_ext = |ext: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let paths = KeyPairPaths {
        private_key: with_ext(".key"),
        public_key: with_ext(".pub"),
    };
    if !force {
        for path in [&paths.private_key, &paths.public_key] {
            if path.symlink_metadata().is_ok() {
                return Err(CosignError::Exists(path.clone()));
            }
        }
    }
    let key = PrivateKey::generate();
    let private_pem = key.to_encrypted_pem(password)?;
    let public_pem = key.public_key().to_pem()?;
    write_atomic(&paths.private_key, private_pem.as_bytes(), 0o600, force)?;
    write_atomic(&paths.public_key, public_pem.as_bytes(), 0o644, force)?;
    Ok(paths)
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<(), CosignError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let result = (|| {
        if !dir.is_dir() {
            return Err(CosignError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "directory {} does not exist (create it first)",
                    dir.display()
                ),
            )));
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".ocikit-key-")
            .tempfile_in(dir)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        tmp.write_all(contents)?;
        tmp.as_file().sync_all()?;
        if force {
            tmp.persist(path).map_err(|e| e.error)?;
        } else {
            tmp.persist_noclobber(path).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    CosignError::Exists(path.to_path_buf())
                } else {
                    CosignError::Io(e.error)
                }
            })?;
        }
        Ok(())
    })();
    result.map_err(|e: CosignError| match e {
        e @ CosignError::Exists(_) => e,
        other => at(path)(other),
    })
}

impl From<tempfile::PersistError> for CosignError {
    fn from(e: tempfile::PersistError) -> CosignError {
        CosignError::Io(e.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `cosign generate-key-pair` with an empty password (label
    /// SIGSTORE, N = 2^16); from sigstore-rs's test data.
    const COSIGN_EMPTY_PASSWORD_KEY: &str = include_str!("testdata/cosign_empty_password.key");
    /// Written by sigstore-rs with password "123" (label COSIGN, N = 2^15).
    const SIGSTORE_RS_KEY: &str = include_str!("testdata/sigstore_rs_123.key");

    #[test]
    fn reads_keys_written_by_cosign_and_sigstore_rs() {
        let key = PrivateKey::from_encrypted_pem(COSIGN_EMPTY_PASSWORD_KEY.as_bytes(), b"")
            .expect("cosign key");
        let sig = key.sign(b"hello");
        key.public_key().verify(b"hello", &sig).unwrap();
        PrivateKey::from_encrypted_pem(SIGSTORE_RS_KEY.as_bytes(), b"123")
            .expect("sigstore-rs key");
        let crlf = SIGSTORE_RS_KEY.replace('\n', "\r\n");
        PrivateKey::from_encrypted_pem(crlf.as_bytes(), b"123").expect("CRLF key");
    }

    #[test]
    fn wrong_password_is_named() {
        let err = PrivateKey::from_encrypted_pem(SIGSTORE_RS_KEY.as_bytes(), b"124").unwrap_err();
        assert!(matches!(err, CosignError::WrongPassword));
        assert!(err.to_string().contains("wrong password"), "{err}");
    }

    #[test]
    fn round_trips_and_writes_cosign_shape() {
        let key = PrivateKey::generate();
        let pem = key.to_encrypted_pem(b"pw").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let (_, json) = pem_decode(pem.as_bytes()).unwrap();
        let json = String::from_utf8(json).unwrap();
        assert!(
            json.starts_with(
                r#"{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":""#
            ),
            "{json}"
        );
        assert!(json.contains(r#""cipher":{"name":"nacl/secretbox","nonce":""#));
        let again = PrivateKey::from_encrypted_pem(pem.as_bytes(), b"pw").unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = key.public_key().to_pem().unwrap();
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")
        );
        assert_eq!(
            PublicKey::from_pem(public.as_bytes()).unwrap(),
            key.public_key()
        );
    }

    #[test]
    fn rejects_bad_files_with_their_reason() {
        let (_, json) = pem_decode(SIGSTORE_RS_KEY.as_bytes()).unwrap();
        let json = String::from_utf8(json).unwrap();
        let tampered_n = json.replace("\"N\":32768", "\"N\":1048576");
        let tampered_cipher = json.replace("nacl/secretbox", "aes");
        let cases: Vec<(String, &str)> = vec![
            ("not a pem".into(), "no \"-----BEGIN"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
                "expected an \"ENCRYPTED COSIGN PRIVATE KEY\" block",
            ),
            (
                "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n!!!\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n".into(),
                "malformed base64 in PEM body",
            ),
            (
                "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\nAAAA\n".into(),
                "no \"-----END",
            ),
            (pem_encode(COSIGN_PRIVATE_KEY_LABEL, b"{not json"), "malformed encrypted private key JSON"),
            (pem_encode(COSIGN_PRIVATE_KEY_LABEL, tampered_n.as_bytes()), "unexpected scrypt parameters N=1048576"),
            (pem_encode(COSIGN_PRIVATE_KEY_LABEL, tampered_cipher.as_bytes()), "unknown cipher \"aes\""),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
                "unencrypted key",
            ),
        ];
        for (input, want) in cases {
            let err = PrivateKey::from_encrypted_pem(input.as_bytes(), b"123").unwrap_err();
            assert!(err.to_string().contains(want), "{input:?}: {err}");
        }
        for (input, want) in [
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "PKIX public key",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "expected a \"PUBLIC KEY\" block",
            ),
        ] {
            let err = PublicKey::from_pem(input.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn writes_key_pair_atomically_without_clobbering() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("cosign");
        let paths = write_key_pair(&prefix, b"pw", false).unwrap();
        let mode = std::fs::metadata(&paths.private_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let before = std::fs::read(&paths.private_key).unwrap();
        let err = write_key_pair(&prefix, b"pw", false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&paths.private_key).unwrap(), before);
        write_key_pair(&prefix, b"pw", true).unwrap();
        assert_ne!(std::fs::read(&paths.private_key).unwrap(), before);
        let key = load_private_key(&paths.private_key, b"pw").unwrap();
        assert_eq!(
            key.public_key(),
            load_public_key(&paths.public_key).unwrap()
        );
        let err = load_private_key(&paths.private_key, b"wrong").unwrap_err();
        assert!(err
            .to_string()
            .starts_with(&paths.private_key.display().to_string()));
        assert!(err.to_string().contains("wrong password"));
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 2, "no temporary files left behind");
    }
}

//! Content digests (`sha256:<hex>`, `sha512:<hex>`): parsing, streaming hashing
//! and verification.
//!
//! Everything in OCI is addressed by digest, so every read and write in ocikit
//! goes through a [`Hasher`] and ends in [`Hasher::verify`]: a blob or manifest
//! whose bytes do not match the digest it was asked for never reaches a
//! destination. `sha2` picks the CPU's SHA extensions at run time.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm the OCI image spec registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `sha256`, the one every registry and layout uses by default.
    Sha256,
    /// `sha512`, which some registries hand out and which must be verified too.
    Sha512,
}

impl Algorithm {
    /// The name as it appears before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the lowercase hex encoding, used to validate parsed digests.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a digest string or a digest check was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// The string is not `algorithm:hex` at all.
    #[error("invalid digest {0:?}: expected ALGORITHM:HEX, e.g. sha256:<64 hex digits>")]
    Malformed(String),
    /// The algorithm is not one ocikit can verify.
    #[error("unsupported digest algorithm {0:?} (supported: sha256, sha512)")]
    UnsupportedAlgorithm(String),
    /// The hex part has the wrong length or non-lowercase-hex characters.
    #[error("invalid digest {0:?}: the hex part must be {1} lowercase hex digits")]
    BadHex(String, usize),
    /// Content did not hash to the digest it was supposed to have.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    Mismatch {
        /// The digest that was asked for.
        expected: Digest,
        /// The digest the bytes actually have.
        actual: Digest,
    },
}

/// A validated content digest.
///
/// The hex is kept as a string because digests are mostly compared, printed
/// and used in paths; the invariant (lowercase hex of the right length) is
/// checked once at construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Builds a digest from parts, checking the hex.
    pub fn new(algorithm: Algorithm, hex: &str) -> Result<Digest, DigestError> {
        let valid = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DigestError::BadHex(
                format!("{algorithm}:{hex}"),
                algorithm.hex_len(),
            ));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The sha256 digest of a byte slice: manifests and configs are small and
    /// already in memory.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The digest of a byte slice with the given algorithm.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The algorithm half.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex half, also the file name under `blobs/<algorithm>/`.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Checks that `bytes` hash to this digest.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), DigestError> {
        let mut hasher = Hasher::new(self.algorithm);
        hasher.update(bytes);
        hasher.verify(self)
    }

    /// The cosign / referrers-tag-schema form: `sha256-<hex>`.
    pub fn to_tag_form(&self) -> String {
        format!("{}-{}", self.algorithm, self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_owned()))?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "" => return Err(DigestError::Malformed(s.to_owned())),
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        };
        Digest::new(algorithm, hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for either algorithm, so that data is hashed in the
/// same pass that moves it.
#[derive(Clone)]
pub struct Hasher {
    state: State,
    written: u64,
}

#[derive(Clone)]
enum State {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Hasher {
        let state = match algorithm {
            Algorithm::Sha256 => State::Sha256(Sha256::new()),
            Algorithm::Sha512 => State::Sha512(Sha512::new()),
        };
        Hasher { state, written: 0 }
    }

    /// A hasher for the algorithm of `expected`, the usual case when verifying.
    pub fn for_digest(expected: &Digest) -> Hasher {
        Hasher::new(expected.algorithm())
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        match &mut self.state {
            State::Sha256(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    /// How many bytes went in: the size that goes into a descriptor.
    pub fn bytes_hashed(&self) -> u64 {
        self.written
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.state {
            State::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            State::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }

    /// Finishes and compares with `expected`.
    pub fn verify(self, expected: &Digest) -> Result<(), DigestError> {
        let actual = self.finish();
        if &actual == expected {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: expected.clone(),
                actual,
            })
        }
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, algorithm: Algorithm) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
        }
    }

    /// The hasher, once the reader is drained.
    pub fn into_hasher(self) -> Hasher {
        self.hasher
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W, algorithm: Algorithm) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Hasher::new(algorithm),
        }
    }

    /// The wrapped writer and the hasher.
    pub fn into_parts(self) -> (W, Hasher) {
        (self.inner, self.hasher)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what passes through it and, at end of stream, fails
/// with [`io::ErrorKind::InvalidData`] unless the bytes match `expected` (and
/// the expected size, when one is given). Reading a blob through it is
/// reading it verified.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    size: Option<u64>,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, which should produce the content of `expected`.
    pub fn new(inner: R, expected: Digest, size: Option<u64>) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::for_digest(&expected)),
            expected,
            size,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(n);
        };
        if n > 0 || buf.is_empty() {
            hasher.update(&buf[..n]);
            if self.size.is_some_and(|size| hasher.bytes_hashed() > size) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is longer than its descriptor's {} bytes",
                        self.expected,
                        self.size.unwrap_or_default()
                    ),
                ));
            }
            return Ok(n);
        }
        let Some(hasher) = self.hasher.take() else {
            return Ok(0);
        };
        let got = hasher.bytes_hashed();
        if let Some(size) = self.size.filter(|&size| size != got) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has {got} bytes, its descriptor says {size}",
                    self.expected
                ),
            ));
        }
        hasher
            .verify(&self.expected)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hashes_known_values() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY_SHA256);
        assert_eq!(
            Digest::of(Algorithm::Sha512, b"abc").hex(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn parses_and_rejects() {
        let d: Digest = EMPTY_SHA256.parse().expect("valid");
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_tag_form(), EMPTY_SHA256.replace(':', "-"));
        let cases = [
            ("sha256", "expected ALGORITHM:HEX"),
            (":abc", "expected ALGORITHM:HEX"),
            ("md5:abc", "unsupported digest algorithm \"md5\""),
            ("sha256:abc", "64 lowercase hex digits"),
            (
                &EMPTY_SHA256.to_uppercase().replace("SHA256", "sha256"),
                "lowercase hex",
            ),
        ];
        for (input, words) in cases {
            let err = input.parse::<Digest>().expect_err(input).to_string();
            assert!(err.contains(words), "{input}: {err}");
        }
    }

    #[test]
    fn verify_reports_both_digests() {
        let d = Digest::sha256_of(b"hello");
        assert!(d.verify(b"hello").is_ok());
        let err = d.verify(b"hellO").expect_err("mismatch");
        assert!(matches!(err, DigestError::Mismatch { .. }));
        assert!(err.to_string().contains(&d.to_string()));
    }

    #[test]
    fn streaming_matches_one_shot() {
        let data = vec![7u8; 100_000];
        let mut reader = HashingReader::new(&data[..], Algorithm::Sha256);
        let mut sink = Vec::new();
        io::copy(&mut reader, &mut sink).expect("copy");
        let hasher = reader.into_hasher();
        assert_eq!(hasher.bytes_hashed(), 100_000);
        assert_eq!(hasher.finish(), Digest::sha256_of(&data));

        let mut writer = HashingWriter::new(Vec::new(), Algorithm::Sha256);
        writer.write_all(&data).expect("write");
        let (out, hasher) = writer.into_parts();
        assert_eq!(out, data);
        assert_eq!(hasher.finish(), Digest::sha256_of(&data));
    }

    #[test]
    fn verifying_reader_checks_at_eof() {
        let data = b"layer bytes".to_vec();
        let d = Digest::sha256_of(&data);
        let mut ok = VerifyingReader::new(&data[..], d.clone(), Some(data.len() as u64));
        io::copy(&mut ok, &mut io::sink()).expect("matches");
        let mut bad = VerifyingReader::new(&b"layer bytez"[..], d.clone(), None);
        let err = io::copy(&mut bad, &mut io::sink()).expect_err("mismatch");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let mut short = VerifyingReader::new(&data[..4], d.clone(), Some(data.len() as u64));
        let err = io::copy(&mut short, &mut io::sink()).expect_err("short");
        assert!(err.to_string().contains("its descriptor says"), "{err}");
        let mut long = VerifyingReader::new(&data[..], d, Some(3));
        let err = io::copy(&mut long, &mut io::sink()).expect_err("long");
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[test]
    fn serde_round_trip() {
        let d = Digest::sha256_of(b"x");
        let json = serde_json::to_string(&d).expect("ser");
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("de"), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}

//! htpasswd files with bcrypt hashes (`htpasswd -B`): the user database that
//! zot and distribution read, so teams keep the file they have.
//!
//! bcrypt is slow on purpose, and registry clients send Basic credentials on
//! every request, so a successful check is remembered (keyed by a SHA-256 of
//! the user and password, never the password itself) until the file changes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::digest::Digest;

/// Why an htpasswd file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    /// The file could not be read.
    #[error("reading htpasswd file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `user:$2y$…` (only bcrypt is accepted: MD5, SHA-1 and
    /// crypt hashes are too weak to protect a registry).
    #[error("{path}:{line}: not a bcrypt entry (expected user:$2y$…; create entries with `htpasswd -B`)")]
    NotBcrypt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// The users of an htpasswd file.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: RwLock<HashSet<Digest>>,
}

impl Htpasswd {
    /// Loads a file.
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Io {
            path: path.to_owned(),
            source,
        })?;
        Htpasswd::parse(&text).map_err(|line| HtpasswdError::NotBcrypt {
            path: path.to_owned(),
            line,
        })
    }

    /// Parses file contents; the error is the 1-based number of a bad line.
    pub fn parse(text: &str) -> Result<Htpasswd, usize> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, hash)) if !user.is_empty() && is_bcrypt(hash) => {
                    users.insert(user.to_owned(), hash.to_owned());
                }
                _ => return Err(index + 1),
            }
        }
        Ok(Htpasswd {
            users,
            verified: RwLock::default(),
        })
    }

    /// Whether `password` is `user`'s.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key = Digest::sha256_of(format!("{user}\0{password}\0{hash}").as_bytes());
        if self.verified.read().is_ok_and(|seen| seen.contains(&key)) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            if let Ok(mut seen) = self.verified.write() {
                seen.insert(key);
            }
        }
        ok
    }

    /// Whether the file names `user` at all.
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2y$", "$2a$", "$2b$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_bcrypt_and_remembers() {
        let hash = bcrypt::hash_with_result("s3cret", 4)
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoY);
        let file = Htpasswd::parse(&format!("# users\nalice:{hash}\n\n")).expect("parse");
        assert!(file.verify("alice", "s3cret"));
        assert!(
            file.verify("alice", "s3cret"),
            "second check from the cache"
        );
        assert!(!file.verify("alice", "S3cret"));
        assert!(!file.verify("bob", "s3cret"));
        assert!(file.has_user("alice"));
    }

    #[test]
    fn refuses_weak_hashes_naming_the_line() {
        for text in [
            "alice:$apr1$abc$def",
            "alice:{SHA}abc",
            "alice:plain",
            ":$2y$05$x",
            "nocolon",
        ] {
            assert_eq!(
                Htpasswd::parse(&format!("ok:$2y$05$abcdefghijklmnopqrstuu\n{text}")).err(),
                Some(2),
                "{text}"
            );
        }
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "bob:md5").expect("write");
        let err = Htpasswd::load(&path).expect_err("weak").to_string();
        assert!(
            err.contains("htpasswd:1") && err.contains("htpasswd -B"),
            "{err}"
        );
    }
}

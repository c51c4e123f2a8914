//! htpasswd files with bcrypt hashes (`htpasswd -B`): the user database that
//! zot and distribution read, so teams keep the file they have.
//!
//! bcrypt is slow on purpose, and registry clients send Basic credentials on
//! every request, so a successful check is remembered (keyed by a SHA-256 of
//! the user, the password and the line's hash, never the password itself).
//! The checks that do run bcrypt run on tokio's blocking pool, at most one
//! per CPU at a time: a flood of wrong passwords queues behind them instead
//! of stalling every connection the async threads serve.
//!
//! A file loaded with [`Htpasswd::load`] is reloaded when it changes
//! ([`crate::watch`], looked at most once a second, when a password is
//! checked): new users work and removed ones are refused without a restart.
//! A file that fails to load keeps the previous users, and the error (file
//! and line) is logged. Remembered checks survive a reload only for users
//! whose line is unchanged, so a changed password is never accepted from
//! memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::digest::Digest;
use crate::watch::FileWatch;

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

/// user → bcrypt hash.
type Users = HashMap<String, String>;

/// The users of an htpasswd file.
#[derive(Debug)]
pub struct Htpasswd {
    users: RwLock<Arc<Users>>,
    /// Checks that succeeded: key → the user they were for.
    verified: RwLock<HashMap<Digest, String>>,
    /// The file and its watch, when loaded from one.
    source: Option<(PathBuf, Mutex<FileWatch>)>,
    /// Room for bcrypt runs: one per CPU.
    bcrypt_slots: tokio::sync::Semaphore,
}

impl Default for Htpasswd {
    fn default() -> Self {
        Htpasswd::new(Users::new(), None)
    }
}

fn read_users(path: &Path) -> Result<Users, HtpasswdError> {
    let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_users(&text).map_err(|line| HtpasswdError::NotBcrypt {
        path: path.to_owned(),
        line,
    })
}

impl Htpasswd {
    /// Loads a file, to be reloaded whenever it changes.
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        Htpasswd::load_checking_every(path, crate::watch::CHECK_EVERY)
    }

    fn load_checking_every(
        path: &Path,
        every: std::time::Duration,
    ) -> Result<Htpasswd, HtpasswdError> {
        let watch = FileWatch::every(vec![path.to_owned()], every);
        let users = read_users(path)?;
        Ok(Htpasswd::new(
            users,
            Some((path.to_owned(), Mutex::new(watch))),
        ))
    }

    /// Parses file contents; the error is the 1-based number of a bad line.
    pub fn parse(text: &str) -> Result<Htpasswd, usize> {
        Ok(Htpasswd::new(parse_users(text)?, None))
    }

    fn new(users: Users, source: Option<(PathBuf, Mutex<FileWatch>)>) -> Htpasswd {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Htpasswd {
            users: RwLock::new(Arc::new(users)),
            verified: RwLock::default(),
            source,
            bcrypt_slots: tokio::sync::Semaphore::new(cpus),
        }
    }

    /// The users now, after reloading the file if it changed.
    fn users(&self) -> Arc<Users> {
        if let Some((path, watch)) = &self.source {
            // One request looks; the others go on with what is loaded.
            let changed = watch.try_lock().is_ok_and(|mut w| w.changed());
            if changed {
                match read_users(path) {
                    Ok(users) => self.replace(users, path),
                    Err(e) => tracing::error!("{e}; keeping the previous users"),
                }
            }
        }
        self.users
            .read()
            .map(|u| u.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn replace(&self, users: Users, path: &Path) {
        let mut current = self.users.write().unwrap_or_else(|p| p.into_inner());
        // Forget the checks of users whose line changed or went away.
        if let Ok(mut verified) = self.verified.write() {
            verified.retain(|_, user| users.get(user) == current.get(user));
        }
        tracing::info!("reloaded {} users from {}", users.len(), path.display());
        *current = Arc::new(users);
    }

    /// Whether `password` is `user`'s.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        let users = self.users();
        let Some(hash) = users.get(user).cloned() else {
            return false;
        };
        let key = Digest::sha256_of(format!("{user}\0{password}\0{hash}").as_bytes());
        if self
            .verified
            .read()
            .is_ok_and(|seen| seen.contains_key(&key))
        {
            return true;
        }
        // The semaphore is never closed; without a slot, refuse.
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return false;
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok {
            if let Ok(mut seen) = self.verified.write() {
                seen.insert(key, user.to_owned());
            }
        }
        ok
    }

    /// Whether the file names `user` at all.
    pub fn has_user(&self, user: &str) -> bool {
        self.users().contains_key(user)
    }
}

/// Parses file contents; the error is the 1-based number of a bad line.
fn parse_users(text: &str) -> Result<Users, usize> {
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
    Ok(users)
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2y$", "$2a$", "$2b$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_bcrypt_and_remembers() {
        let hash = bcrypt::hash_with_result("s3cret", 4)
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoY);
        let file = Htpasswd::parse(&format!("# users\nalice:{hash}\n\n")).expect("parse");
        assert!(file.verify("alice", "s3cret").await);
        assert!(
            file.verify("alice", "s3cret").await,
            "second check from the cache"
        );
        assert!(!file.verify("alice", "S3cret").await);
        assert!(!file.verify("bob", "s3cret").await);
        assert!(file.has_user("alice"));
    }

    fn line(user: &str, password: &str) -> String {
        let hash = bcrypt::hash_with_result(password, 4)
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoY);
        format!("{user}:{hash}\n")
    }

    #[tokio::test]
    async fn reloads_users_and_forgets_changed_passwords() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("htpasswd");
        let bob = line("bob", "pw");
        std::fs::write(&path, line("alice", "one") + &bob).expect("write");
        let file = Htpasswd::load_checking_every(&path, std::time::Duration::ZERO).expect("load");
        assert!(file.verify("alice", "one").await && file.verify("bob", "pw").await);
        assert!(!file.verify("carol", "pw").await);
        // alice's password changes, carol arrives, bob's line stays.
        std::fs::write(&path, line("alice", "two") + &bob + &line("carol", "pw")).expect("edit");
        assert!(
            !file.verify("alice", "one").await,
            "the old password, remembered, is refused"
        );
        assert!(file.verify("alice", "two").await);
        assert!(file.verify("carol", "pw").await, "a new user works");
        let remembered: Vec<String> = file
            .verified
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        assert_eq!(
            remembered.iter().filter(|u| *u == "bob").count(),
            1,
            "{remembered:?}"
        );
        let count = |user: &str| remembered.iter().filter(|u| *u == user).count();
        assert_eq!(count("alice"), 1, "only the new password: {remembered:?}");
        // bob is removed.
        std::fs::write(&path, line("alice", "two") + &line("carol", "pw")).expect("rm bob");
        assert!(!file.verify("bob", "pw").await, "a removed user is refused");
        assert!(!file.has_user("bob"));
        // A broken file keeps the users there were.
        std::fs::write(&path, "alice:plain\n").expect("break");
        assert!(file.verify("alice", "two").await && file.verify("carol", "pw").await);
        std::fs::remove_file(&path).expect("rm");
        assert!(
            file.verify("carol", "pw").await,
            "a missing file keeps them too"
        );
        // A file parsed from text never reloads.
        let fixed = Htpasswd::parse(&line("dave", "pw")).expect("parse");
        assert!(fixed.verify("dave", "pw").await);
    }

    /// bcrypt runs off the async threads: on a one-thread runtime, a timer
    /// keeps ticking while a slow hash is checked.
    #[tokio::test(flavor = "current_thread")]
    async fn bcrypt_does_not_stall_the_runtime() {
        let hash = bcrypt::hash_with_result("slow", 11)
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoY);
        let file = Htpasswd::parse(&format!("alice:{hash}\n")).expect("parse");
        let ticks = std::sync::atomic::AtomicUsize::new(0);
        let started = std::time::Instant::now();
        let ticker = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let ok = tokio::select! {
            ok = file.verify("alice", "slow") => ok,
            () = ticker => unreachable!("the ticker never ends"),
        };
        assert!(ok);
        let took = started.elapsed();
        let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            took.as_millis() < 20 || ticks as u128 * 5 * 4 >= took.as_millis(),
            "{ticks} ticks of 5 ms in {took:?}: bcrypt blocked the runtime"
        );
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

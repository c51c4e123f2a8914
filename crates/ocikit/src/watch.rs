//! Noticing that files changed on disk, cheaply enough to ask on every
//! request: the server's certificate and its htpasswd file are reloaded
//! this way, without a restart and without a watcher thread.
//!
//! A file's stamp is its modification time, size and inode, so both an
//! edit in place and a new file renamed over the old one are seen. The
//! files are looked at most once per [`CHECK_EVERY`]. A change is reported
//! once: a caller whose reload fails (a file half written) keeps what it
//! had, and tries again at the next change, so a broken file is logged
//! once, not every second.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How often watched files are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// When and how a file last changed; `None` while it is missing.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// Some files and how they were when last looked at.
#[derive(Debug)]
pub struct FileWatch {
    paths: Vec<PathBuf>,
    seen: Vec<Stamp>,
    checked: Instant,
    every: Duration,
}

impl FileWatch {
    /// Watches `paths`, taking their state now as the one already loaded.
    pub fn new(paths: Vec<PathBuf>) -> FileWatch {
        FileWatch::every(paths, CHECK_EVERY)
    }

    /// Watches `paths`, looking at most once per `every`.
    pub fn every(paths: Vec<PathBuf>, every: Duration) -> FileWatch {
        let seen = paths.iter().map(|p| stamp(p)).collect();
        FileWatch {
            paths,
            seen,
            checked: Instant::now(),
            every,
        }
    }

    /// Whether any file changed since the last call that said so (looking
    /// only when `every` has passed since the last look).
    pub fn changed(&mut self) -> bool {
        if self.checked.elapsed() < self.every {
            return false;
        }
        self.checked = Instant::now();
        let now: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
        if now == self.seen {
            return false;
        }
        self.seen = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_renames_and_removals_are_seen_once() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users");
        std::fs::write(&path, "a").expect("write");
        let mut watch = FileWatch::every(vec![path.clone()], Duration::ZERO);
        assert!(!watch.changed(), "nothing yet");
        std::fs::write(&path, "ab").expect("edit");
        assert!(watch.changed());
        assert!(!watch.changed(), "reported once");
        // Same size, renamed over: a new inode.
        let new = dir.path().join("users.new");
        std::fs::write(&new, "xy").expect("new");
        std::fs::rename(&new, &path).expect("rename");
        assert!(watch.changed(), "rename seen");
        std::fs::remove_file(&path).expect("rm");
        assert!(watch.changed(), "removal seen");
        assert!(!watch.changed());
        let mut slow = FileWatch::every(vec![path.clone()], Duration::from_secs(3600));
        std::fs::write(&path, "back").expect("write");
        assert!(!slow.changed(), "not looked at before `every`");
    }
}

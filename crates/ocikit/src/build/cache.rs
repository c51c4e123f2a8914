//! The build cache: an image whose inputs have not changed is not built
//! again, and an image whose inputs have changed always is.
//!
//! An image's cache key is a sha256 over everything its result depends on:
//! the oci-build version and output format (compression, pinned levels,
//! `SOURCE_DATE_EPOCH`, platform), the image's directives after
//! substitution, its parent (the manifest digest of a `built` base, the
//! content of a tar base, the manifest digest of an `oci` or `docker`
//! base), the environment its `run` step sees, and the *content* of every
//! import and overlay directory: each entry's path, type, executable bit
//! (all permission bits for overlay directories, which keep theirs), link
//! target and bytes, walked in name order. mtimes are not part of it
//! (they are clamped in the image, so an edit that keeps the mtime must
//! still rebuild), and a file deleted from an imported directory changes
//! the walk — stacker's bugs #70 and #82 cannot happen here.
//!
//! `binds` are part of the key by their spec (host source → container
//! dest, so adding, removing or moving a bind rebuilds) but not by their
//! contents: they are host directories shared with the `run` step (package
//! caches, source checkouts) whose contents stacker does not hash either; a
//! build that depends on what they hold needs `--no-cache`.
//!
//! An entry (`cache/<key>`) records the manifest descriptor the build made
//! and the image root it built;
//! it is a hit only while the manifest, config and layer blobs are in the
//! staging store and the image's root filesystem still carries the same key
//! (`roots/<image>/cache-key`, written last, after a successful build), so
//! images built on it or importing from it see the same tree. After each
//! build, [`Cache::prune`] removes the entries that can no longer hit and
//! the staged blobs only they needed, so the work directory holds one
//! entry and one set of blobs per image root, however often it is rebuilt.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::image::ImageConfig;
use crate::manifest::{self, Descriptor, Manifest, ManifestKind};

use super::output::Staging;
use super::BuildError;

/// Bumped whenever what a key covers changes, so old entries stop matching.
const CACHE_FORMAT: &str = "oci-build cache v2";

/// One cache entry (`cache/<key hex>`): the manifest a build made and the
/// image root it built it into, so a prune can tell a live entry (its root
/// still carries its key) from a dead one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    manifest: Descriptor,
    root: PathBuf,
}

/// The name of the file in an image's roots directory that records the key
/// its root filesystem was built with.
const ROOTFS_KEY: &str = "cache-key";

fn io_err(path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Collects the inputs of one image into its cache key.
pub struct KeyBuilder {
    hasher: Hasher,
}

impl Default for KeyBuilder {
    fn default() -> Self {
        KeyBuilder::new()
    }
}

impl KeyBuilder {
    /// A key over nothing yet but the cache format and oci-build's version.
    pub fn new() -> KeyBuilder {
        let mut key = KeyBuilder {
            hasher: Hasher::new(Algorithm::Sha256),
        };
        key.text("format", CACHE_FORMAT);
        key.text("version", env!("CARGO_PKG_VERSION"));
        key
    }

    /// Adds a named value. Names and values are length-prefixed, so two
    /// different sequences of inputs never hash the same bytes.
    pub fn text(&mut self, name: &str, value: &str) {
        for part in [name, value] {
            self.hasher.update(&(part.len() as u64).to_le_bytes());
            self.hasher.update(part.as_bytes());
        }
    }

    /// Adds the content of a file (its sha256).
    pub fn file(&mut self, name: &str, path: &Path) -> Result<(), BuildError> {
        let digest = sha256_file(path)?;
        self.text(name, &digest.to_string());
        Ok(())
    }

    /// Adds a file, symlink or directory tree by content: for each entry in
    /// name order its relative path, type, executable bit, link target and
    /// the sha256 of its bytes. Owners, other permission bits and mtimes
    /// are left out: imports enter the image with normalised owners and
    /// modes and clamped mtimes, so they cannot change the result.
    pub fn tree(&mut self, name: &str, root: &Path) -> Result<(), BuildError> {
        self.walk(name, root, false)
    }

    /// Adds a tree as [`KeyBuilder::tree`] does, and each entry's full
    /// permission bits: an overlay directory enters the image with them.
    pub fn tree_with_modes(&mut self, name: &str, root: &Path) -> Result<(), BuildError> {
        self.walk(name, root, true)
    }

    fn walk(&mut self, name: &str, root: &Path, modes: bool) -> Result<(), BuildError> {
        self.text("tree", name);
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name();
        for entry in walker {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(root).to_owned();
                io_err(&path, std::io::Error::other(e.to_string()))
            })?;
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .to_string_lossy()
                .into_owned();
            let meta = entry
                .metadata()
                .map_err(|e| io_err(entry.path(), std::io::Error::other(e.to_string())))?;
            let kind = meta.file_type();
            if modes && !kind.is_symlink() {
                self.text("mode", &format!("{rel} {:o}", meta.mode() & 0o7777));
            }
            if kind.is_symlink() {
                let target =
                    std::fs::read_link(entry.path()).map_err(|e| io_err(entry.path(), e))?;
                self.text(&format!("link {rel}"), &target.to_string_lossy());
            } else if kind.is_dir() {
                self.text("dir", &rel);
            } else if kind.is_file() {
                let exec = if meta.mode() & 0o111 != 0 { "x" } else { "-" };
                self.text(
                    &format!("file {exec} {rel}"),
                    &sha256_file(entry.path())?.to_string(),
                );
            } else {
                self.text("other", &format!("{rel} {:o}", meta.mode()));
            }
        }
        Ok(())
    }

    /// The key.
    pub fn finish(self) -> Digest {
        self.hasher.finish()
    }
}

/// The sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<Digest, BuildError> {
    let mut file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// What a cache hit gives back: everything a finished image leaves for the
/// images built on it.
pub struct Hit {
    /// The manifest's descriptor (with its platform).
    pub manifest: Descriptor,
    /// The image's config.
    pub config: ImageConfig,
    /// Its layers, bottom first.
    pub layers: Vec<Descriptor>,
}

/// The cache entries of one work directory.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `dir` (created when the first entry is stored).
    pub fn new(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_owned(),
        }
    }

    /// The entry for `key`, if there is one, every blob it needs is in
    /// `staging` and the root filesystem at `root` was built with this key.
    /// Anything missing or unreadable is a miss, never an error: the image
    /// is simply built again.
    pub fn lookup(&self, key: &Digest, root: &Path, staging: &Staging) -> Option<Hit> {
        let recorded = std::fs::read_to_string(root.join(ROOTFS_KEY)).ok()?;
        if recorded.trim() != key.to_string() || !root.join("rootfs").is_dir() {
            return None;
        }
        let entry = std::fs::read(self.dir.join(key.hex())).ok()?;
        let Entry { manifest, .. } = serde_json::from_slice(&entry).ok()?;
        let bytes = std::fs::read(staging.path(&manifest.digest)).ok()?;
        manifest.digest.verify(&bytes).ok()?;
        let parsed = Manifest::parse(&bytes, Some(manifest::OCI_MANIFEST)).ok()?;
        let ManifestKind::Image { config, layers } = parsed.kind else {
            return None;
        };
        let config_bytes = std::fs::read(staging.path(&config.digest)).ok()?;
        config.digest.verify(&config_bytes).ok()?;
        for layer in &layers {
            let size = std::fs::metadata(staging.path(&layer.digest)).ok()?.len();
            if size != layer.size {
                return None;
            }
        }
        Some(Hit {
            manifest,
            config: ImageConfig::parse(&config_bytes).ok()?,
            layers,
        })
    }

    /// Records that `key` built `manifest` into the root filesystem under
    /// `root`. Called only after the image built successfully.
    pub fn store(
        &self,
        key: &Digest,
        manifest: &Descriptor,
        root: &Path,
    ) -> Result<(), BuildError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        let entry = Entry {
            manifest: manifest.clone(),
            root: root.to_owned(),
        };
        let bytes = serde_json::to_vec(&entry)
            .map_err(|e| io_err(&self.dir, std::io::Error::other(e.to_string())))?;
        write_replacing(&self.dir.join(key.hex()), &bytes)?;
        write_replacing(&root.join(ROOTFS_KEY), key.to_string().as_bytes())
    }
}

impl Cache {
    /// Removes every entry that can no longer be a hit (its image root was
    /// rebuilt with another key, or removed, or its blobs are gone), then
    /// every staged blob no remaining entry refers to. Disk use stays
    /// bounded by the images' current builds: an image rebuilt a hundred
    /// times keeps one entry and one set of blobs. Returns the number of
    /// entries and blobs removed.
    pub fn prune(&self, staging: &Staging) -> Result<(usize, usize), BuildError> {
        let mut keep: BTreeSet<Digest> = BTreeSet::new();
        let mut removed = 0;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((0, staging.retain(&keep)?))
            }
            Err(e) => return Err(io_err(&self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&self.dir, e))?;
            let path = entry.path();
            match self.live_blobs(&entry.file_name().to_string_lossy(), staging) {
                Some(blobs) => keep.extend(blobs),
                None => {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(&path, e)),
                    }
                    removed += 1;
                }
            }
        }
        Ok((removed, staging.retain(&keep)?))
    }

    /// The blobs of entry `name` when it is live, `None` when it is dead.
    fn live_blobs(&self, name: &str, staging: &Staging) -> Option<Vec<Digest>> {
        let key = Digest::new(Algorithm::Sha256, name).ok()?;
        let bytes = std::fs::read(self.dir.join(name)).ok()?;
        let Entry { manifest, root } = serde_json::from_slice(&bytes).ok()?;
        let recorded = std::fs::read_to_string(root.join(ROOTFS_KEY)).ok()?;
        if recorded.trim() != key.to_string() {
            return None;
        }
        let bytes = std::fs::read(staging.path(&manifest.digest)).ok()?;
        let parsed = Manifest::parse(&bytes, Some(&manifest.media_type)).ok()?;
        let ManifestKind::Image { config, layers } = parsed.kind else {
            return None;
        };
        let mut blobs = vec![manifest.digest, config.digest];
        blobs.extend(layers.into_iter().map(|l| l.digest));
        Some(blobs)
    }
}

/// Writes `path` through a temporary file and a rename, so a reader sees the
/// old content or the new, never a part.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_err(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| io_err(path, e))?;
    tmp.persist(path).map_err(|e| io_err(path, e.error))?;
    Ok(())
}

/// The environment a `run` step sees, as key text (sorted `K=V` lines).
pub fn environment_text(env: &[String]) -> String {
    let sorted: BTreeMap<&str, ()> = env.iter().map(|e| (e.as_str(), ())).collect();
    sorted.into_keys().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree_key(root: &Path) -> Digest {
        let mut key = KeyBuilder::new();
        key.tree("t", root).expect("tree");
        key.finish()
    }

    #[test]
    fn tree_keys_follow_content_not_mtimes() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/a"), "one").expect("w");
        std::fs::write(root.join("b"), "two").expect("w");
        let first = tree_key(&root);

        // Touching a file (mtime only) keeps the key.
        let later = filetime::FileTime::from_unix_time(2_000_000_000, 0);
        filetime::set_file_mtime(root.join("b"), later).expect("mtime");
        assert_eq!(tree_key(&root), first, "an mtime change is not a change");

        // The same size and mtime, other bytes: a new key.
        std::fs::write(root.join("b"), "TWO").expect("w");
        filetime::set_file_mtime(root.join("b"), later).expect("mtime");
        let edited = tree_key(&root);
        assert_ne!(edited, first, "an edit that keeps the mtime is a change");

        // A deleted file in a subdirectory: a new key.
        std::fs::remove_file(root.join("sub/a")).expect("rm");
        let deleted = tree_key(&root);
        assert_ne!(deleted, edited);

        // The executable bit matters (it survives normalisation), group
        // write does not.
        std::fs::set_permissions(root.join("b"), std::fs::Permissions::from_mode(0o664))
            .expect("chmod");
        assert_eq!(tree_key(&root), deleted);
        std::fs::set_permissions(root.join("b"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert_ne!(tree_key(&root), deleted);

        // With modes (overlay_dirs), group write matters too.
        let with_modes = |root: &Path| {
            let mut key = KeyBuilder::new();
            key.tree_with_modes("t", root).expect("tree");
            key.finish()
        };
        let before = with_modes(&root);
        std::fs::set_permissions(root.join("b"), std::fs::Permissions::from_mode(0o775))
            .expect("chmod");
        assert_ne!(with_modes(&root), before);
        std::fs::set_permissions(root.join("b"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");

        // A symlink's target is content.
        std::os::unix::fs::symlink("x", root.join("l")).expect("ln");
        let linked = tree_key(&root);
        std::fs::remove_file(root.join("l")).expect("rm");
        std::os::unix::fs::symlink("y", root.join("l")).expect("ln");
        assert_ne!(tree_key(&root), linked);
    }

    /// A rebuilt root leaves its old entry dead: prune removes it and the
    /// blobs only it needed, keeps the live entry's, and sweeps temp files.
    #[test]
    fn prune_keeps_only_what_live_entries_need() {
        let dir = tempfile::tempdir().expect("tmp");
        let staging = Staging::new(&dir.path().join("blobs")).expect("staging");
        let cache = Cache::new(&dir.path().join("cache"));
        let root = dir.path().join("roots/img");
        std::fs::create_dir_all(root.join("rootfs")).expect("mkdir");
        let entry = |label: &str| {
            let mut config = ImageConfig::default();
            config.config.labels.insert("v".into(), label.into());
            let config = staging
                .put_bytes(manifest::OCI_CONFIG, &config.to_bytes())
                .expect("config");
            let layer = staging
                .put_bytes(crate::manifest::OCI_LAYER_TAR, b"shared layer")
                .expect("layer");
            let bytes = crate::image::manifest_bytes(
                &config,
                std::slice::from_ref(&layer),
                &BTreeMap::new(),
            );
            let manifest = staging
                .put_bytes(manifest::OCI_MANIFEST, &bytes)
                .expect("manifest");
            let mut key = KeyBuilder::new();
            key.text("label", label);
            let key = key.finish();
            cache.store(&key, &manifest, &root).expect("store");
            (key, manifest, config, layer)
        };
        let (old_key, old_manifest, old_config, layer) = entry("one");
        let (new_key, new_manifest, new_config, _) = entry("two");
        std::fs::write(dir.path().join("blobs/.tmp-left"), "x").expect("w");
        assert_eq!(cache.prune(&staging).expect("prune"), (1, 2));
        assert!(cache.lookup(&new_key, &root, &staging).is_some());
        assert!(cache.lookup(&old_key, &root, &staging).is_none());
        for (digest, kept) in [
            (&old_manifest.digest, false),
            (&old_config.digest, false),
            (&new_manifest.digest, true),
            (&new_config.digest, true),
            (&layer.digest, true),
        ] {
            assert_eq!(staging.path(digest).exists(), kept, "{digest}");
        }
        assert!(!dir.path().join("blobs/.tmp-left").exists());
        // The root removed: nothing is live any more.
        std::fs::remove_dir_all(&root).expect("rm");
        assert_eq!(cache.prune(&staging).expect("prune"), (1, 3));
    }

    #[test]
    fn inputs_are_length_prefixed() {
        let mut a = KeyBuilder::new();
        a.text("ab", "c");
        let mut b = KeyBuilder::new();
        b.text("a", "bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn a_missing_or_foreign_entry_is_a_miss() {
        let dir = tempfile::tempdir().expect("tmp");
        let staging = Staging::new(&dir.path().join("blobs")).expect("staging");
        let cache = Cache::new(&dir.path().join("cache"));
        let root = dir.path().join("roots/img");
        std::fs::create_dir_all(root.join("rootfs")).expect("mkdir");
        let key = KeyBuilder::new().finish();
        assert!(cache.lookup(&key, &root, &staging).is_none(), "no entry");

        let config = ImageConfig::default().to_bytes();
        let config_desc = staging
            .put_bytes(manifest::OCI_CONFIG, &config)
            .expect("config");
        let bytes = crate::image::manifest_bytes(&config_desc, &[], &BTreeMap::new());
        let manifest_desc = staging
            .put_bytes(manifest::OCI_MANIFEST, &bytes)
            .expect("manifest");
        cache.store(&key, &manifest_desc, &root).expect("store");
        let hit = cache.lookup(&key, &root, &staging).expect("a hit");
        assert_eq!(hit.manifest, manifest_desc);
        assert!(hit.layers.is_empty());

        // The root filesystem was rebuilt with another key: a miss.
        let mut other = KeyBuilder::new();
        other.text("x", "y");
        let other = other.finish();
        std::fs::write(root.join(ROOTFS_KEY), other.to_string()).expect("w");
        assert!(cache.lookup(&key, &root, &staging).is_none());

        // The staged config blob is gone: a miss.
        cache.store(&key, &manifest_desc, &root).expect("store");
        std::fs::remove_file(staging.path(&config_desc.digest)).expect("rm");
        assert!(cache.lookup(&key, &root, &staging).is_none());
    }
}

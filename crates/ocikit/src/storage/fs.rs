//! The filesystem backend: every repository is a standard OCI image layout,
//! with one shared, deduplicated blob store underneath.
//!
//! # On-disk format
//!
//! ```text
//! ROOT/
//!   _ocikit/blobs/<alg>/<hex>     the shared blob store (one copy of every blob)
//!   _ocikit/uploads/<id>          upload sessions in progress
//!   _ocikit/tmp/                  files being written, renamed into place when complete
//!   _ocikit/lock                  held by the one process that serves the root
//!   _ocikit/token.key             oci-serve's token-signing key (not storage's:
//!                                 GC and scrub only look at blobs/ and uploads/)
//!   library/alpine/               repository `library/alpine`: an OCI image layout
//!     oci-layout                  {"imageLayoutVersion":"1.0.0"}
//!     index.json                  every manifest of the repository; tags as
//!                                 `org.opencontainers.image.ref.name` annotations
//!     blobs/sha256/<hex>          hard links into _ocikit/blobs
//!   foo/                          repository `foo`
//!     _blobs/                     repository `foo/blobs`      (escaped)
//!     _index.json/                repository `foo/index.json` (escaped)
//!     _oci-layout/                repository `foo/oci-layout` (escaped)
//!     bar/                        repository `foo/bar`
//! ```
//!
//! **The mapping from repository names to directories**: each `/`-separated
//! component of the name is one directory level under ROOT; a component
//! equal to one of a layout's own entries (`blobs`, `index.json`,
//! `oci-layout`) is written with a leading underscore (`_blobs`, …). No valid
//! component starts with `_` (the spec's grammar is
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`), so the escaped names never collide
//! with another repository, and the mapping is one-to-one for every
//! spec-valid name: `foo/blobs`, `foo/index.json` and `foo/oci-layout` are
//! repositories of their own, distinct from repository `foo`'s files. The
//! private `_ocikit` directory cannot be a repository either. So
//! `skopeo copy oci:ROOT/library/alpine:3.19 …`, `umoci` and `oci-copy` read a
//! repository directly, while the server runs or not.
//!
//! A directory is a repository when it holds an `oci-layout` file. Every
//! manifest pushed to a repository has an entry in its `index.json`: one per
//! tag (annotated with the tag), or one without a name when no tag points at it.
//!
//! # Durability
//!
//! Uploads are written to `_ocikit/uploads`, hashed while they stream in,
//! fsynced, checked against the declared digest, renamed into the store and
//! the store directory fsynced; the repository's hard link is then made and
//! its directory fsynced. `index.json` is rewritten through a temp file
//! (fsync, rename, fsync of the directory) under a per-repository lock. A
//! crash therefore leaves either the old or the new state, plus at worst an
//! unreferenced blob. Upload sessions are not durable: they live in memory
//! and their files are removed when the server starts.
//!
//! # Memory
//!
//! Each repository's tags and manifest metadata are read once and then kept
//! in memory (the server is the root's only writer), along with the bytes of
//! every manifest up to [`CACHED_MANIFEST_MAX`]: a manifest GET by tag is a
//! hash-map lookup.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

use super::{
    BlobRead, ByteRange, ByteStream, ManifestRef, NewManifest, Result, Storage, StorageError,
    StoredManifest,
};
use crate::digest::{Algorithm, Digest, DigestError, Hasher};
use crate::manifest::{self, Descriptor, Manifest, ManifestKind};
use crate::name::{validate_repository, validate_tag};

/// The private directory under the root (not a valid repository component).
pub const PRIVATE_DIR: &str = "_ocikit";

/// Manifests up to this size are kept in memory as well as on disk.
pub const CACHED_MANIFEST_MAX: u64 = 64 * 1024;

/// The annotation that names a tag in an OCI layout's index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Names inside a layout directory that a child repository's directory must not take.
const LAYOUT_ENTRIES: [&str; 3] = ["blobs", "index.json", "oci-layout"];

const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The directory of repository `name` under `root`: see the module docs for
/// the mapping. Fails for a name the spec's grammar rejects, so no name can
/// reach outside the root (`..`, `/`, upper case never get here).
pub fn repository_dir(root: &Path, name: &str) -> Result<PathBuf> {
    validate_repository(name)?;
    let mut dir = root.to_path_buf();
    for component in name.split('/') {
        if LAYOUT_ENTRIES.contains(&component) {
            dir.push(format!("_{component}"));
        } else {
            dir.push(component);
        }
    }
    Ok(dir)
}

/// The repository component a directory entry stands for, if it stands for one
/// (the inverse of [`repository_dir`] for one level).
fn component_of(entry: &str) -> Option<&str> {
    if let Some(escaped) = entry.strip_prefix('_') {
        return LAYOUT_ENTRIES.contains(&escaped).then_some(escaped);
    }
    if LAYOUT_ENTRIES.contains(&entry) {
        return None;
    }
    Some(entry)
}

/// Where a blob lives inside a layout directory (or the store).
pub fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// The filesystem storage backend. Cheap to clone (shared state).
#[derive(Clone)]
pub struct FsStorage {
    inner: Arc<Inner>,
}

/// Choices an operator makes about a storage root (zot's `storage` keys).
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Share one copy of identical blobs between repositories through hard
    /// links (zot's `storage.dedupe`, default true). Without it every
    /// repository holds its own copy, for filesystems or backups where hard
    /// links are unwelcome.
    pub dedupe: bool,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions { dedupe: true }
    }
}

struct Inner {
    root: PathBuf,
    private: PathBuf,
    options: FsOptions,
    /// Held shared while a stored blob is linked into a repository, and
    /// exclusively while GC sweeps the store (see [`gc`]).
    store_lock: RwLock<()>,
    /// The open `_ocikit/lock` file, locked exclusively for as long as this
    /// storage is open: one process owns a root.
    _owner: File,
    repos: RwLock<HashMap<String, Arc<Repo>>>,
    create: Mutex<()>,
    uploads: Mutex<HashMap<String, Arc<Upload>>>,
}

struct Repo {
    dir: PathBuf,
    state: RwLock<Arc<RepoState>>,
    write: Mutex<()>,
}

#[derive(Clone, Default)]
struct RepoState {
    tags: BTreeMap<String, Digest>,
    manifests: HashMap<Digest, Arc<ManifestInfo>>,
}

struct ManifestInfo {
    media_type: String,
    size: u64,
    bytes: Option<Bytes>,
    subject: Option<Digest>,
    artifact_type: Option<String>,
    annotations: BTreeMap<String, String>,
}

impl ManifestInfo {
    fn new(media_type: String, bytes: &Bytes, parsed: Option<&Manifest>) -> ManifestInfo {
        let size = bytes.len() as u64;
        let artifact_type = parsed.and_then(|m| {
            m.artifact_type.clone().or_else(|| match &m.kind {
                ManifestKind::Image { config, .. } => Some(config.media_type.clone()),
                ManifestKind::Index { .. } => None,
            })
        });
        ManifestInfo {
            media_type,
            size,
            bytes: (size <= CACHED_MANIFEST_MAX).then(|| bytes.clone()),
            subject: parsed.and_then(|m| m.subject.as_ref().map(|s| s.digest.clone())),
            artifact_type,
            annotations: parsed.map(|m| m.annotations.clone()).unwrap_or_default(),
        }
    }
}

struct Upload {
    repo: String,
    path: PathBuf,
    slot: tokio::sync::Mutex<Option<UploadFile>>,
    touched: Mutex<std::time::Instant>,
}

impl Upload {
    fn touch(&self) {
        *lock(&self.touched) = std::time::Instant::now();
    }

    /// How long since a request last used the session.
    fn idle(&self) -> std::time::Duration {
        lock(&self.touched).elapsed()
    }
}

struct UploadFile {
    file: File,
    size: u64,
    hasher: Hasher,
}

#[derive(Deserialize)]
struct IndexFile {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl FsStorage {
    /// Opens (creating if needed) a storage root. Removes what a previous run
    /// left in the temp and upload areas; nothing there was acknowledged.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsStorage> {
        FsStorage::open_with(root, FsOptions::default())
    }

    /// Opens a storage root with the given options (see [`FsStorage::open`]).
    pub fn open_with(root: impl Into<PathBuf>, options: FsOptions) -> Result<FsStorage> {
        let root: PathBuf = root.into();
        let private = root.join(PRIVATE_DIR);
        fs::create_dir_all(&private).map_err(|e| StorageError::io(&private, e))?;
        let lock_path = private.join("lock");
        let owner = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StorageError::io(&lock_path, e))?;
        match owner.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StorageError::InUse { path: root });
            }
            Err(fs::TryLockError::Error(e)) => return Err(StorageError::io(lock_path, e)),
        }
        for dir in ["tmp", "uploads"] {
            let path = private.join(dir);
            match fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(path, e)),
            }
        }
        for dir in ["tmp", "uploads", "blobs/sha256", "blobs/sha512"] {
            let path = private.join(dir);
            fs::create_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
        }
        Ok(FsStorage {
            inner: Arc::new(Inner {
                root,
                private,
                options,
                store_lock: RwLock::new(()),
                _owner: owner,
                repos: RwLock::new(HashMap::new()),
                create: Mutex::new(()),
                uploads: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Runs blocking filesystem work off the async threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StorageError::io(self.inner.root.clone(), io::Error::other(e)))?
    }

    /// The repository if it is already in memory: the fast path.
    fn cached(&self, name: &str) -> Option<Arc<Repo>> {
        read_lock(&self.inner.repos).get(name).cloned()
    }

    async fn repo(&self, name: &str) -> Result<Option<Arc<Repo>>> {
        if let Some(repo) = self.cached(name) {
            return Ok(Some(repo));
        }
        let name = name.to_owned();
        self.blocking(move |inner| inner.repo(&name)).await
    }

    fn upload(&self, repo: &str, id: &str) -> Result<Arc<Upload>> {
        lock(&self.inner.uploads)
            .get(id)
            .filter(|u| u.repo == repo)
            .cloned()
            .ok_or_else(|| StorageError::UploadUnknown(id.to_owned()))
    }
}

impl Inner {
    fn tmp_path(&self) -> PathBuf {
        self.private.join("tmp").join(random_id())
    }

    fn store_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.private, digest)
    }

    /// Loads a repository from disk if it exists (and remembers it).
    fn repo(&self, name: &str) -> Result<Option<Arc<Repo>>> {
        if let Some(repo) = read_lock(&self.repos).get(name) {
            return Ok(Some(repo.clone()));
        }
        let dir = repository_dir(&self.root, name)?;
        if !dir.join("oci-layout").is_file() {
            return Ok(None);
        }
        let state = load_state(&dir)?;
        let repo = Arc::new(Repo {
            dir,
            state: RwLock::new(Arc::new(state)),
            write: Mutex::new(()),
        });
        let mut repos = write_lock(&self.repos);
        Ok(Some(repos.entry(name.to_owned()).or_insert(repo).clone()))
    }

    /// The repository, created as an empty layout if it does not exist yet.
    fn repo_or_create(&self, name: &str) -> Result<Arc<Repo>> {
        if let Some(repo) = self.repo(name)? {
            return Ok(repo);
        }
        let _guard = lock(&self.create);
        if let Some(repo) = self.repo(name)? {
            return Ok(repo);
        }
        let dir = repository_dir(&self.root, name)?;
        // Create the missing directories from the top, fsyncing each parent
        // so the new entries are durable.
        let mut missing = Vec::new();
        let mut cursor = dir.as_path();
        while !cursor.exists() && cursor != self.root {
            missing.push(cursor.to_path_buf());
            match cursor.parent() {
                Some(parent) => cursor = parent,
                None => break,
            }
        }
        for path in missing.iter().rev() {
            match fs::create_dir(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StorageError::io(path, e)),
            }
            if let Some(parent) = path.parent() {
                fsync_dir(parent)?;
            }
        }
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| StorageError::io(&blobs, e))?;
        fsync_dir(&dir.join("blobs"))?;
        self.write_atomic(&dir.join("index.json"), &index_bytes(&RepoState::default()))?;
        // oci-layout last: a directory is a repository once it has one.
        self.write_atomic(&dir.join("oci-layout"), OCI_LAYOUT_FILE)?;
        drop(_guard);
        self.repo(name)?.ok_or_else(|| StorageError::Corrupt {
            path: dir,
            reason: "repository vanished right after it was created".into(),
        })
    }

    /// Writes a file atomically and durably: temp file, fsync, rename, fsync dir.
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp_path();
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, dest)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(StorageError::io(dest, e));
        }
        fsync_dir(dest.parent().unwrap_or(&self.root))
    }

    /// Puts verified content at its place in the store (unless it is there).
    fn store_file(&self, from: &Path, digest: &Digest) -> Result<PathBuf> {
        let store = self.store_path(digest);
        if store.exists() {
            let _ = fs::remove_file(from);
            return Ok(store);
        }
        if let Some(dir) = store.parent() {
            fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        }
        // A hard link creates the store entry only if it is absent, so two
        // uploads of the same blob racing here keep one inode (a rename
        // would replace the first, and the repositories already linked to it
        // would hold a second copy). Without hard links: rename.
        match fs::hard_link(from, &store) {
            Ok(()) => {
                let _ = fs::remove_file(from);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(from);
                return Ok(store);
            }
            Err(_) => fs::rename(from, &store).map_err(|e| StorageError::io(&store, e))?,
        }
        fsync_dir(store.parent().unwrap_or(&self.private))?;
        Ok(store)
    }

    /// Makes `source` (a stored blob) visible in repository `name`.
    fn link_into(&self, name: &str, source: &Path, digest: &Digest) -> Result<()> {
        let repo = self.repo_or_create(name)?;
        let dest = blob_path(&repo.dir, digest);
        if dest.exists() {
            return Ok(());
        }
        let dir = dest.parent().unwrap_or(&repo.dir);
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let linked = if self.options.dedupe {
            fs::hard_link(source, &dest)
        } else {
            Err(io::Error::other(
                "dedupe is off: every repository keeps its own copy",
            ))
        };
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            // Filesystems without hard links (or across devices), or dedupe
            // turned off: a full copy.
            Err(_) => {
                let tmp = self.tmp_path();
                let copy = (|| {
                    fs::copy(source, &tmp)?;
                    File::open(&tmp)?.sync_all()?;
                    fs::rename(&tmp, &dest)
                })();
                if let Err(e) = copy {
                    let _ = fs::remove_file(&tmp);
                    return Err(StorageError::io(&dest, e));
                }
            }
        }
        fsync_dir(dir)
    }

    /// Applies a change to a repository's state under its lock, writing
    /// index.json when the change says so.
    fn update<T>(
        &self,
        repo: &Repo,
        change: impl FnOnce(&mut RepoState) -> (bool, T),
    ) -> Result<T> {
        let _guard = lock(&repo.write);
        let mut state = RepoState::clone(&read_lock(&repo.state));
        let (changed, out) = change(&mut state);
        if changed {
            self.write_atomic(&repo.dir.join("index.json"), &index_bytes(&state))?;
            *write_lock(&repo.state) = Arc::new(state);
        }
        Ok(out)
    }
}

/// Finds every repository under `dir` (the root, or a repository directory
/// for `prefix`), following the name mapping backwards.
pub(crate) fn walk_repositories(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let file_name = entry.file_name();
        let Some(component) = file_name.to_str().and_then(component_of) else {
            continue;
        };
        let name = if prefix.is_empty() {
            component.to_owned()
        } else {
            format!("{prefix}/{component}")
        };
        if validate_repository(&name).is_err() {
            continue;
        }
        let path = entry.path();
        if path.join("oci-layout").is_file() {
            out.push(name.clone());
        }
        walk_repositories(&path, &name, out)?;
    }
    Ok(())
}

fn load_state(dir: &Path) -> Result<RepoState> {
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path).map_err(|e| StorageError::io(&index_path, e))?;
    let index: IndexFile = serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
        path: index_path.clone(),
        reason: format!("not an OCI index: {e}"),
    })?;
    let mut state = RepoState::default();
    for entry in index.manifests {
        if !state.manifests.contains_key(&entry.digest) {
            let path = blob_path(dir, &entry.digest);
            let info = match fs::read(&path) {
                Ok(bytes) => {
                    let bytes = Bytes::from(bytes);
                    let parsed = Manifest::parse(&bytes, Some(&entry.media_type)).ok();
                    ManifestInfo::new(entry.media_type.clone(), &bytes, parsed.as_ref())
                }
                // A dangling entry stays listed (scrub reports it); reading it fails.
                Err(_) => ManifestInfo {
                    media_type: entry.media_type.clone(),
                    size: entry.size,
                    bytes: None,
                    subject: None,
                    artifact_type: None,
                    annotations: BTreeMap::new(),
                },
            };
            state.manifests.insert(entry.digest.clone(), Arc::new(info));
        }
        if let Some(tag) = entry.annotation(REF_NAME) {
            if validate_tag(tag).is_ok() {
                state.tags.insert(tag.to_owned(), entry.digest.clone());
            }
        }
    }
    Ok(state)
}

/// index.json for a state: one entry per tag (sorted), then the untagged
/// manifests (sorted by digest). Deterministic, so an unchanged state writes
/// the same bytes.
fn index_bytes(state: &RepoState) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut tagged = HashSet::new();
    for (tag, digest) in &state.tags {
        if let Some(info) = state.manifests.get(digest) {
            let mut d = Descriptor::new(info.media_type.clone(), digest.clone(), info.size);
            d.annotations = Some(BTreeMap::from([(REF_NAME.to_owned(), tag.clone())]));
            entries.push(d);
            tagged.insert(digest);
        }
    }
    let mut untagged: Vec<_> = state
        .manifests
        .iter()
        .filter(|(digest, _)| !tagged.contains(digest))
        .collect();
    untagged.sort_by(|a, b| a.0.cmp(b.0));
    for (digest, info) in untagged {
        entries.push(Descriptor::new(
            info.media_type.clone(),
            digest.clone(),
            info.size,
        ));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": entries,
    });
    let mut bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

/// 128 random bits, hex: upload ids and temp names nobody can guess.
pub(crate) fn random_id() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How much of a blob one read takes off the disk on its way out.
const READ_CHUNK: u64 = 1 << 20;

/// One chunk read off the disk on the blocking pool: the file comes back
/// with it, to read the next.
type ChunkRead = tokio::task::JoinHandle<io::Result<(File, Vec<u8>)>>;

/// Where a blob stream stands: the file not yet read from, or the read of
/// the chunk to send next already under way.
enum Next {
    Start(File),
    Reading(ChunkRead),
}

/// Reads up to `want` bytes of `file` on the blocking pool.
fn read_chunk(file: File, want: u64) -> ChunkRead {
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(want as usize);
        (&file).take(want).read_to_end(&mut chunk)?;
        Ok((file, chunk))
    })
}

/// Streams `len` bytes of `file` from where it stands: each chunk is read on
/// the blocking pool straight into the buffer that goes to the socket (no
/// intermediate copy, unlike `tokio::fs::File`), and the read of the next
/// chunk starts as soon as one is handed out, so the disk copy on one core
/// overlaps the socket copy on another (on loopback that doubled a 256 MiB
/// GET). No thread is held while a slow client drains a chunk; at most two
/// chunks are in memory per download.
fn file_stream(file: File, len: u64, path: PathBuf) -> ByteStream {
    Box::pin(futures_util::stream::try_unfold(
        (Some(Next::Start(file)), len),
        move |(next, left)| {
            let path = path.clone();
            async move {
                let Some(next) = next.filter(|_| left > 0) else {
                    return Ok(None);
                };
                let read = match next {
                    Next::Start(file) => read_chunk(file, left.min(READ_CHUNK)),
                    Next::Reading(read) => read,
                };
                let (file, chunk) = read.await.map_err(io::Error::other)??;
                if chunk.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} ended {left} bytes early", path.display()),
                    ));
                }
                let left = left - chunk.len() as u64;
                let next =
                    (left > 0).then(|| Next::Reading(read_chunk(file, left.min(READ_CHUNK))));
                Ok(Some((Bytes::from(chunk), (next, left))))
            }
        },
    ))
}

fn hash_file(path: &Path, algorithm: Algorithm) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

impl Storage for FsStorage {
    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let dir = repository_dir(&self.inner.root, repo)?;
        let path = blob_path(&dir, digest);
        self.blocking(move |_| match fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        })
        .await
    }

    async fn blob_read(
        &self,
        repo: &str,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<Option<BlobRead>> {
        let dir = repository_dir(&self.inner.root, repo)?;
        let path = blob_path(&dir, digest);
        let opened = self
            .blocking(move |_| {
                let mut file = match File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(StorageError::io(path, e)),
                };
                let size = file
                    .metadata()
                    .map_err(|e| StorageError::io(&path, e))?
                    .len();
                let (start, len) = match range {
                    Some(r) => (r.start, r.len()),
                    None => (0, size),
                };
                if start > 0 {
                    file.seek(SeekFrom::Start(start))
                        .map_err(|e| StorageError::io(&path, e))?;
                }
                Ok(Some((file, size, len)))
            })
            .await?;
        let path = blob_path(&dir, digest);
        Ok(opened.map(|(file, size, len)| BlobRead {
            size,
            stream: file_stream(file, len, path),
        }))
    }

    async fn blob_mount(&self, repo: &str, from: &str, digest: &Digest) -> Result<bool> {
        let source = blob_path(&repository_dir(&self.inner.root, from)?, digest);
        let (repo, digest) = (repo.to_owned(), digest.clone());
        self.blocking(move |inner| {
            if !source.is_file() {
                return Ok(false);
            }
            let _store = read_lock(&inner.store_lock);
            inner.link_into(&repo, &source, &digest)?;
            Ok(true)
        })
        .await
    }

    async fn blob_delete(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repo.to_owned(), digest.clone());
        self.blocking(move |inner| {
            let Some(repo) = inner.repo(&repo)? else {
                return Ok(false);
            };
            let _guard = lock(&repo.write);
            if read_lock(&repo.state).manifests.contains_key(&digest) {
                return Err(StorageError::ManifestBlob(digest));
            }
            let path = blob_path(&repo.dir, &digest);
            match fs::remove_file(&path) {
                Ok(()) => {
                    fsync_dir(path.parent().unwrap_or(&repo.dir))?;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(StorageError::io(path, e)),
            }
        })
        .await
    }

    async fn upload_start(&self, repo: &str) -> Result<String> {
        validate_repository(repo)?;
        let repo = repo.to_owned();
        let (id, upload) = self
            .blocking(move |inner| {
                let id = random_id();
                let path = inner.private.join("uploads").join(&id);
                let file = File::create(&path).map_err(|e| StorageError::io(&path, e))?;
                let upload = Upload {
                    repo,
                    path,
                    touched: Mutex::new(std::time::Instant::now()),
                    slot: tokio::sync::Mutex::new(Some(UploadFile {
                        file,
                        size: 0,
                        hasher: Hasher::new(Algorithm::Sha256),
                    })),
                };
                Ok((id, upload))
            })
            .await?;
        lock(&self.inner.uploads).insert(id.clone(), Arc::new(upload));
        Ok(id)
    }

    async fn upload_size(&self, repo: &str, id: &str) -> Result<Option<u64>> {
        let Ok(upload) = self.upload(repo, id) else {
            return Ok(None);
        };
        let slot = upload.slot.lock().await;
        Ok(slot.as_ref().map(|f| f.size))
    }

    async fn upload_append(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        mut body: ByteStream,
    ) -> Result<u64> {
        let upload = self.upload(repo, id)?;
        upload.touch();
        let mut slot = upload.slot.lock().await;
        let Some(mut file) = slot.take() else {
            return Err(StorageError::UploadUnknown(id.to_owned()));
        };
        if let Some(got) = offset {
            if got != file.size {
                let size = file.size;
                *slot = Some(file);
                return Err(StorageError::OutOfOrder {
                    id: id.to_owned(),
                    got,
                    size,
                });
            }
        }
        // The writer thread hashes and writes; this task only moves frames.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let path = upload.path.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut error = None;
            while let Some(chunk) = rx.blocking_recv() {
                if error.is_some() {
                    continue;
                }
                match file.file.write_all(&chunk) {
                    Ok(()) => {
                        file.hasher.update(&chunk);
                        file.size += chunk.len() as u64;
                    }
                    Err(e) => {
                        // Keep the file consistent with what was hashed.
                        let _ = file.file.set_len(file.size);
                        let _ = file.file.seek(SeekFrom::Start(file.size));
                        error = Some(e);
                    }
                }
            }
            (file, error)
        });
        let mut body_error = None;
        while let Some(frame) = body.next().await {
            match frame {
                Ok(chunk) => {
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    body_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let (file, write_error) = writer
            .await
            .map_err(|e| StorageError::io(&path, io::Error::other(e)))?;
        let size = file.size;
        *slot = Some(file);
        upload.touch();
        if let Some(e) = write_error {
            return Err(StorageError::io(path, e));
        }
        if let Some(source) = body_error {
            return Err(StorageError::Body {
                received: size,
                source,
            });
        }
        Ok(size)
    }

    async fn upload_finish(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64> {
        let upload = self.upload(repo, id)?;
        let mut slot = upload.slot.lock().await;
        let Some(file) = slot.take() else {
            return Err(StorageError::UploadUnknown(id.to_owned()));
        };
        lock(&self.inner.uploads).remove(id);
        let (upload, digest) = (upload.clone(), digest.clone());
        self.blocking(move |inner| {
            let path = &upload.path;
            let finish = || -> Result<u64> {
                let UploadFile { file, size, hasher } = file;
                file.sync_all().map_err(|e| StorageError::io(path, e))?;
                drop(file);
                let actual = match digest.algorithm() {
                    Algorithm::Sha256 => hasher.finish(),
                    other => hash_file(path, other).map_err(|e| StorageError::io(path, e))?,
                };
                if actual != digest {
                    return Err(DigestError::Mismatch {
                        expected: digest.clone(),
                        actual,
                    }
                    .into());
                }
                let _store = read_lock(&inner.store_lock);
                let store = inner.store_file(path, &digest)?;
                inner.link_into(&upload.repo, &store, &digest)?;
                Ok(size)
            };
            let result = finish();
            if result.is_err() {
                let _ = fs::remove_file(path);
            }
            result
        })
        .await
    }

    async fn upload_cancel(&self, repo: &str, id: &str) -> Result<bool> {
        let Ok(upload) = self.upload(repo, id) else {
            return Ok(false);
        };
        let mut slot = upload.slot.lock().await;
        lock(&self.inner.uploads).remove(id);
        if slot.take().is_none() {
            return Ok(false);
        }
        let path = upload.path.clone();
        self.blocking(move |_| match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(StorageError::io(path, e)),
        })
        .await
    }

    async fn manifest_get(
        &self,
        repo: &str,
        reference: &ManifestRef,
    ) -> Result<Option<StoredManifest>> {
        let Some(repo) = self.repo(repo).await? else {
            return Ok(None);
        };
        let state = read_lock(&repo.state).clone();
        let digest = match reference {
            ManifestRef::Tag(tag) => match state.tags.get(tag) {
                Some(digest) => digest,
                None => return Ok(None),
            },
            ManifestRef::Digest(digest) => digest,
        };
        let Some(info) = state.manifests.get(digest) else {
            return Ok(None);
        };
        if let Some(bytes) = &info.bytes {
            return Ok(Some(StoredManifest {
                digest: digest.clone(),
                media_type: info.media_type.clone(),
                bytes: bytes.clone(),
            }));
        }
        let path = blob_path(&repo.dir, digest);
        let bytes = self
            .blocking(move |_| fs::read(&path).map_err(|e| StorageError::io(path, e)))
            .await?;
        Ok(Some(StoredManifest {
            digest: digest.clone(),
            media_type: info.media_type.clone(),
            bytes: Bytes::from(bytes),
        }))
    }

    async fn manifest_put(&self, repo: &str, tag: Option<&str>, new: NewManifest) -> Result<()> {
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        let (name, tag) = (repo.to_owned(), tag.map(str::to_owned));
        self.blocking(move |inner| {
            let repo = inner.repo_or_create(&name)?;
            let digest = new.digest.clone();
            // Idempotent re-push: nothing to write.
            {
                let state = read_lock(&repo.state);
                let known = state.manifests.contains_key(&digest);
                let tagged = tag
                    .as_ref()
                    .is_none_or(|t| state.tags.get(t) == Some(&digest));
                if known && tagged && blob_path(&repo.dir, &digest).is_file() {
                    return Ok(());
                }
            }
            let store = inner.store_path(&digest);
            let store_guard = read_lock(&inner.store_lock);
            if !store.is_file() {
                let tmp = inner.tmp_path();
                let write = (|| {
                    let mut file = File::create(&tmp)?;
                    file.write_all(&new.bytes)?;
                    file.sync_all()
                })();
                if let Err(e) = write {
                    let _ = fs::remove_file(&tmp);
                    return Err(StorageError::io(tmp, e));
                }
                inner.store_file(&tmp, &digest)?;
            }
            inner.link_into(&name, &store, &digest)?;
            drop(store_guard);
            let info = Arc::new(ManifestInfo::new(
                new.media_type.clone(),
                &new.bytes,
                Some(&new.manifest),
            ));
            // Under the repository's lock, which GC holds while it removes
            // blobs: everything the manifest names is still here, so an
            // acknowledged manifest is complete.
            let needed: Vec<Digest> = std::iter::once(digest.clone())
                .chain(
                    new.manifest
                        .references()
                        .into_iter()
                        .filter(|d| !d.extra.contains_key("urls"))
                        .map(|d| d.digest.clone()),
                )
                .collect();
            let dir = repo.dir.clone();
            inner.update(&repo, |state| {
                if let Some(missing) = needed.iter().find(|d| !blob_path(&dir, d).is_file()) {
                    return (false, Err(StorageError::BlobMissing(missing.clone())));
                }
                state.manifests.insert(digest.clone(), info);
                if let Some(tag) = tag {
                    state.tags.insert(tag, digest);
                }
                (true, Ok(()))
            })?
        })
        .await
    }

    async fn manifest_delete(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let (name, digest) = (repo.to_owned(), digest.clone());
        self.blocking(move |inner| {
            let Some(repo) = inner.repo(&name)? else {
                return Ok(false);
            };
            let removed = inner.update(&repo, |state| {
                if state.manifests.remove(&digest).is_none() {
                    return (false, false);
                }
                state.tags.retain(|_, d| *d != digest);
                (true, true)
            })?;
            if removed {
                let path = blob_path(&repo.dir, &digest);
                match fs::remove_file(&path) {
                    Ok(()) => fsync_dir(path.parent().unwrap_or(&repo.dir))?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StorageError::io(path, e)),
                }
            }
            Ok(removed)
        })
        .await
    }

    async fn tag_delete(&self, repo: &str, tag: &str) -> Result<bool> {
        let (name, tag) = (repo.to_owned(), tag.to_owned());
        self.blocking(move |inner| {
            let Some(repo) = inner.repo(&name)? else {
                return Ok(false);
            };
            inner.update(&repo, |state| {
                let removed = state.tags.remove(&tag).is_some();
                (removed, removed)
            })
        })
        .await
    }

    async fn tags(&self, repo: &str) -> Result<Option<Vec<String>>> {
        let Some(repo) = self.repo(repo).await? else {
            return Ok(None);
        };
        let state = read_lock(&repo.state).clone();
        Ok(Some(state.tags.keys().cloned().collect()))
    }

    async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Vec<Descriptor>> {
        let Some(repo) = self.repo(repo).await? else {
            return Ok(Vec::new());
        };
        let state = read_lock(&repo.state).clone();
        let mut found: Vec<Descriptor> = state
            .manifests
            .iter()
            .filter(|(_, info)| info.subject.as_ref() == Some(digest))
            .map(|(d, info)| {
                let mut descriptor = Descriptor::new(info.media_type.clone(), d.clone(), info.size);
                descriptor.artifact_type = info.artifact_type.clone();
                if !info.annotations.is_empty() {
                    descriptor.annotations = Some(info.annotations.clone());
                }
                descriptor
            })
            .collect();
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(found)
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        self.blocking(|inner| {
            let mut out = Vec::new();
            walk_repositories(&inner.root, "", &mut out)?;
            out.sort();
            Ok(out)
        })
        .await
    }
}

mod gc;
pub use gc::{GcOptions, GcReport};

#[cfg(test)]
mod tests;

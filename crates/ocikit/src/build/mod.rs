//! Building a stacker.yaml plan into OCI images: bases, imports, overlay
//! directories, `run` steps, layers, configs and the output layout.
//!
//! Each image gets a root filesystem under the roots directory, starting as
//! a copy of its base (scratch: empty; tar: the tar unpacked; built: the
//! other image's root filesystem). Imports with `dest` and overlay
//! directories are copied in, `run` executes over it (see [`run`]), and
//! what changed from the base — by content — becomes one new layer
//! ([`crate::layer::tree::write_diff`]). Blobs go to a staging store first;
//! only when every image has built are the tagged images' blobs moved into
//! the OCI layout and index.json rewritten, so a failed build tags nothing.
//!
//! Before an image is built, its inputs are fetched and checked and its
//! cache key computed ([`cache`]); an image whose key matches its last
//! build is taken from the cache without running anything.

pub mod base;
pub mod cache;
pub mod fs;
pub mod output;
pub mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::image::{self, ImageConfig};
use crate::layer::writeback::WritebackFile;
use crate::layer::{tree, Compression, LayerWriter};
use crate::manifest::{self, Descriptor};
use crate::stacker::{Base, Image, ImportSource, Plan};

/// Why a build failed. Each names the image and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing a layer failed.
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    /// Reading or writing an OCI layout (the output, or an `oci` base) failed.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// A tar base is unsafe or broken.
    #[error("tar base {}: entry {entry}: {message}", path.display())]
    BadTar {
        /// The tar file.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// Why.
        message: String,
    },
    /// An import cannot be brought in.
    #[error("image {image}: import {path}: {message}")]
    Import {
        /// The image.
        image: String,
        /// The import as written.
        path: String,
        /// Why, and the fix.
        message: String,
    },
    /// An import's content does not match its declared hash.
    #[error("image {image}: import {path}: hash mismatch: the file has sha256 {actual}, the stacker.yaml says {expected} (update the hash if the file changed on purpose)")]
    HashMismatch {
        /// The image.
        image: String,
        /// The import.
        path: String,
        /// The declared hash.
        expected: String,
        /// The actual hash.
        actual: String,
    },
    /// The `run` script failed.
    #[error("image {image}: run failed with exit status {status}; the end of its output:\n{tail}")]
    Run {
        /// The image.
        image: String,
        /// Its exit status.
        status: String,
        /// The last lines it printed.
        tail: String,
    },
    /// The runtime could not be started or configured.
    #[error("image {image}: {message}")]
    Runtime {
        /// The image.
        image: String,
        /// Why.
        message: String,
    },
    /// An `oci` or `docker` base cannot be found, pulled or read.
    #[error("image {image}: base {base}: {message}")]
    Base {
        /// The image.
        image: String,
        /// The base as written.
        base: String,
        /// Why, and the fix.
        message: String,
    },
    /// A feature of the format this build cannot do.
    #[error("image {image}: {message}")]
    Unsupported {
        /// The image.
        image: String,
        /// What, and the way around it.
        message: String,
    },
}

/// How to build.
#[derive(Clone)]
pub struct BuildOptions {
    /// The OCI layout to write the images to.
    pub oci_dir: PathBuf,
    /// Where root filesystems are kept (`roots/<image>/rootfs`).
    pub roots_dir: PathBuf,
    /// Scratch space: staged blobs, downloads, runtime bundles.
    pub work_dir: PathBuf,
    /// Layer compression.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: every timestamp is clamped to it.
    pub epoch: u64,
    /// The OCI runtime for `run` (`runc`).
    pub runtime: String,
    /// Receives the lines `run` scripts print (the tool shows them on stderr).
    pub echo: Option<run::Echo>,
    /// The platform the images are built for (`os`, `architecture`,
    /// `variant`): it picks a base's manifest from an index and is the
    /// default of the config's `os` and `architecture`.
    pub platform: manifest::Platform,
    /// Take unchanged images from the build cache (`--no-cache` turns it
    /// off: every image is built, and the cache is refreshed).
    pub cache: bool,
}

/// One image the build produced.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image's name (its tag in the layout).
    pub name: String,
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// Built only for other images: not tagged.
    pub build_only: bool,
    /// Taken from the build cache: its inputs had not changed.
    pub cached: bool,
}

/// What a finished image leaves for images built on it.
struct Done {
    manifest: Digest,
    rootfs: PathBuf,
    config: ImageConfig,
    layers: Vec<Descriptor>,
}

/// The work directory of one build: its staging store and cache, held
/// under an exclusive lock (`lock` in the work directory) so that two
/// builds sharing it wait for each other instead of pruning each other's
/// blobs.
struct Work {
    staging: output::Staging,
    cache: cache::Cache,
    /// The tags of the pulled bases this build used.
    pulled: std::cell::RefCell<std::collections::BTreeSet<String>>,
    /// The download directories this build used.
    downloads: std::cell::RefCell<std::collections::BTreeSet<PathBuf>>,
    _lock: std::fs::File,
}

impl Work {
    fn open(options: &BuildOptions) -> Result<Work, BuildError> {
        fs::mkdirs(&options.work_dir)?;
        let lock = lock_work_dir(&options.work_dir, options.echo.as_ref())?;
        Ok(Work {
            staging: output::Staging::new(&options.work_dir.join("blobs"))?,
            cache: cache::Cache::new(&options.work_dir.join("cache")),
            pulled: Default::default(),
            downloads: Default::default(),
            _lock: lock,
        })
    }

    /// Prunes the work directory after the build, whether it succeeded or
    /// not (see [`prune`]), and returns the build's result.
    fn finish<T>(
        self,
        options: &BuildOptions,
        result: Result<T, BuildError>,
    ) -> Result<T, BuildError> {
        let pruned = prune(
            options,
            &self.staging,
            &self.cache,
            &self.pulled.borrow(),
            &self.downloads.borrow(),
        );
        let value = result?;
        pruned?;
        Ok(value)
    }
}

/// Takes the exclusive lock of a work directory, waiting for a build that
/// holds it (and telling `echo`, when given, that it waits).
fn lock_work_dir(work_dir: &Path, echo: Option<&run::Echo>) -> Result<std::fs::File, BuildError> {
    let path = work_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| BuildError::Io {
            path: path.clone(),
            source: e,
        })?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            if let Some(echo) = echo {
                echo(&format!(
                    "oci-build: waiting for another build using {} to finish",
                    work_dir.display()
                ));
            }
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(BuildError::Io { path, source: e }),
    }
    file.lock()
        .map_err(|e| BuildError::Io { path, source: e })?;
    Ok(file)
}

/// Bounds the work directory's disk use after a build: cache entries that
/// can no longer hit and the staged blobs only they needed
/// ([`cache::Cache::prune`]), downloads this build did not use, and
/// pulled bases this build did not use
/// ([`base::prune_pulled`]). What the output layout holds is its own (hard
/// links), so nothing published is lost.
fn prune(
    options: &BuildOptions,
    staging: &output::Staging,
    cache: &cache::Cache,
    pulled: &std::collections::BTreeSet<String>,
    downloads: &std::collections::BTreeSet<PathBuf>,
) -> Result<(), BuildError> {
    cache.prune(staging)?;
    output::prune_downloads(&options.work_dir.join("downloads"), downloads)?;
    base::prune_pulled(&options.work_dir.join("bases"), pulled)
}

/// Builds every image of `plan` in order; tags the images that are not
/// `build_only` in the layout only when all of them built.
pub fn build(plan: &Plan, options: &BuildOptions) -> Result<Vec<BuiltImage>, BuildError> {
    check_platform(plan, &options.platform)?;
    let work = Work::open(options)?;
    let result = build_plan(plan, options, &work).and_then(|built| {
        let tagged: Vec<&BuiltImage> = built.iter().filter(|b| !b.build_only).collect();
        output::publish(&options.oci_dir, &work.staging, &tagged)?;
        Ok(built)
    });
    work.finish(options, result)
}

/// Removes what builds leave on disk, as `stacker clean` does: the root
/// filesystems directory, the output layout and the stacker directory
/// (which holds the work directory: staged blobs, the build cache, pulled
/// bases). Waits for a build using the work directory to finish first.
pub fn clean(
    oci_dir: &Path,
    roots_dir: &Path,
    stacker_dir: &Path,
    work_dir: &Path,
) -> Result<(), BuildError> {
    let _lock = if work_dir.is_dir() {
        Some(lock_work_dir(work_dir, None)?)
    } else {
        None
    };
    for dir in [roots_dir, oci_dir, stacker_dir] {
        fs::remove_tree(dir)?;
    }
    Ok(())
}

/// Builds each plan for its platform (the plans differ only by the
/// `TARGETOS`/`TARGETARCH`/`TARGETVARIANT` substitutions) and makes each
/// image an image index of its per-platform manifests, in the order the
/// platforms are given. Root filesystems are kept apart per platform
/// (`roots/<os>-<arch>[-<variant>]/<image>`); the staging store and the
/// cache are shared (a key covers the platform). As with [`build`],
/// nothing is tagged unless every image builds for every platform.
pub fn build_platforms(
    plans: &[(manifest::Platform, Plan)],
    options: &BuildOptions,
) -> Result<Vec<BuiltImage>, BuildError> {
    for (platform, plan) in plans {
        check_platform(plan, platform)?;
    }
    let work = Work::open(options)?;
    let result = build_indexes(plans, options, &work);
    work.finish(options, result)
}

fn build_indexes(
    plans: &[(manifest::Platform, Plan)],
    options: &BuildOptions,
    work: &Work,
) -> Result<Vec<BuiltImage>, BuildError> {
    let staging = &work.staging;
    // Per image name, in the order first seen: its build for each platform.
    let mut images: Vec<(String, bool, Vec<BuiltImage>)> = Vec::new();
    for (platform, plan) in plans {
        let dir = base::platform_name(platform).replace('/', "-");
        let per_platform = BuildOptions {
            platform: platform.clone(),
            roots_dir: options.roots_dir.join(dir),
            ..options.clone()
        };
        for image in build_plan(plan, &per_platform, work)? {
            match images.iter_mut().find(|(name, _, _)| *name == image.name) {
                Some((_, _, builds)) => builds.push(image),
                None => images.push((image.name.clone(), image.build_only, vec![image])),
            }
        }
    }
    let mut built = Vec::new();
    for (name, build_only, builds) in images {
        let manifests: Vec<Descriptor> = builds.iter().map(|b| b.manifest.clone()).collect();
        let bytes = image::index_bytes(&manifests);
        built.push(BuiltImage {
            name,
            manifest: staging.put_bytes(manifest::OCI_INDEX, &bytes)?,
            build_only,
            cached: builds.iter().all(|b| b.cached),
        });
    }
    let tagged: Vec<&BuiltImage> = built.iter().filter(|b| !b.build_only).collect();
    output::publish(&options.oci_dir, staging, &tagged)?;
    Ok(built)
}

/// Refuses, before anything is built, a plan with a script to execute for a
/// platform this machine cannot execute.
fn check_platform(plan: &Plan, platform: &manifest::Platform) -> Result<(), BuildError> {
    for step in &plan.steps {
        let image = &step.image;
        if image.script().is_some() || image.label_script().is_some() {
            run::check_platform(&image.name, platform)?;
        }
    }
    Ok(())
}

/// Parses `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`).
pub fn parse_platform(s: &str) -> Result<manifest::Platform, String> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => {
            let variant = parts
                .get(2)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string());
            if parts.len() == 3 && variant.is_none() {
                return Err(format!(
                    "platform {s:?} has an empty variant (write os/arch or os/arch/variant)"
                ));
            }
            Ok(manifest::Platform {
                architecture: (*arch).to_owned(),
                os: (*os).to_owned(),
                variant,
                extra: BTreeMap::new(),
            })
        }
        _ => Err(format!(
            "platform {s:?} is not OS/ARCH[/VARIANT] (for example linux/amd64 or linux/arm/v7)"
        )),
    }
}

/// Builds the images of one plan, in order, into the staging store.
fn build_plan(
    plan: &Plan,
    options: &BuildOptions,
    work: &Work,
) -> Result<Vec<BuiltImage>, BuildError> {
    let mut done: BTreeMap<String, Done> = BTreeMap::new();
    let mut built = Vec::new();
    for step in &plan.steps {
        let (manifest, finished, cached) = build_one(&step.image, options, work, &done)?;
        built.push(BuiltImage {
            name: step.image.name.clone(),
            manifest,
            build_only: step.image.build_only,
            cached,
        });
        done.insert(step.image.name.clone(), finished);
    }
    Ok(built)
}

/// The platform of this machine (`linux/amd64`), the default target.
pub fn host_platform() -> manifest::Platform {
    let (os, architecture) = crate::copy::host_platform();
    manifest::Platform {
        architecture: architecture.to_owned(),
        os: os.to_owned(),
        variant: None,
        extra: BTreeMap::new(),
    }
}

/// A base, fetched and checked, before anything is built on it.
enum BaseInput<'a> {
    Scratch,
    Tar {
        /// The tar file on this host.
        path: PathBuf,
        /// How history names it.
        shown: String,
    },
    Built(&'a Done),
    Image(Box<base::ImageBase>),
}

/// Downloads `url` for `image` (see [`output::download`]) and records its
/// directory as used by this build.
fn download(
    work: &Work,
    image: &str,
    url: &str,
    options: &BuildOptions,
    expected: Option<&str>,
) -> Result<PathBuf, BuildError> {
    let dir = options.work_dir.join("downloads");
    work.downloads
        .borrow_mut()
        .insert(output::download_dir(&dir, url));
    output::download(image, url, &dir, expected)
}

fn resolve_base<'a>(
    image: &Image,
    options: &BuildOptions,
    work: &Work,
    done: &'a BTreeMap<String, Done>,
) -> Result<BaseInput<'a>, BuildError> {
    let name = &image.name;
    let unsupported = |message: String| BuildError::Unsupported {
        image: name.clone(),
        message,
    };
    Ok(match &image.from {
        Base::Scratch => BaseInput::Scratch,
        Base::Tar { url } => {
            let path = match crate::stacker::file::stacker_url(url) {
                Some((other, path)) => {
                    let other_done = done.get(other).ok_or_else(|| {
                        unsupported(format!("tar base {url}: image {other} is not built"))
                    })?;
                    fs::inside(&other_done.rootfs, path)?
                }
                None if url.starts_with("http://") || url.starts_with("https://") => {
                    download(work, name, url, options, None)?
                }
                None => PathBuf::from(url),
            };
            // History names a local tar by its file name only: the directory
            // it was built in must not change the image.
            let shown = if url.contains("://") {
                url.clone()
            } else {
                url.rsplit('/').next().unwrap_or(url).to_owned()
            };
            BaseInput::Tar { path, shown }
        }
        Base::Built { tag } => BaseInput::Built(done.get(tag).ok_or_else(|| {
            unsupported(format!("base image {tag} has not been built in this run"))
        })?),
        Base::Oci { .. } | Base::Docker { .. } => BaseInput::Image(Box::new(base::resolve(
            name,
            &image.from,
            &options.platform,
            &options.work_dir.join("bases"),
        )?)),
    })
}

/// The cache key of an image: see [`cache`] for what it covers.
fn cache_key(
    image: &Image,
    options: &BuildOptions,
    base: &BaseInput<'_>,
    imports: &[PathBuf],
    env: &[String],
) -> Result<Digest, BuildError> {
    let mut key = cache::KeyBuilder::new();
    key.text("compression", options.compression.name());
    key.text(
        "levels",
        &format!(
            "gzip {} zstd {} job {} {}",
            crate::layer::GZIP_LEVEL,
            crate::layer::ZSTD_LEVEL,
            crate::layer::ZSTD_JOB_SIZE,
            crate::layer::pgzip::FORMAT
        ),
    );
    key.text("epoch", &options.epoch.to_string());
    key.text("platform", &base::platform_name(&options.platform));
    key.text("directives", &format!("{image:?}"));
    // Binds by their spec (the directives hold them too; named here so the
    // key's coverage reads in one place): what a bind's source holds is not
    // hashed (see `cache`).
    for bind in &image.binds {
        key.text(
            "bind",
            &format!("{} -> {}", bind.source.display(), bind.dest),
        );
    }
    match base {
        BaseInput::Scratch => key.text("base", "scratch"),
        BaseInput::Tar { path, shown } => {
            key.text("base tar", shown);
            key.file("base tar content", path)?;
        }
        BaseInput::Built(parent) => key.text("base built", &parent.manifest.to_string()),
        BaseInput::Image(base) => key.text("base image", &base.manifest.digest.to_string()),
    }
    for (import, path) in image.imports.iter().zip(imports) {
        key.tree(&import.path, path)?;
    }
    for overlay in &image.overlay_dirs {
        key.tree_with_modes(&overlay.dest, &overlay.source)?;
    }
    key.text("run environment", &cache::environment_text(env));
    Ok(key.finish())
}

fn build_one(
    image: &Image,
    options: &BuildOptions,
    work: &Work,
    done: &BTreeMap<String, Done>,
) -> Result<(Descriptor, Done, bool), BuildError> {
    let (staging, cache) = (&work.staging, &work.cache);
    let name = &image.name;
    let root = options.roots_dir.join(name);
    // The inputs, fetched and checked, and the cache key over them.
    let base = resolve_base(image, options, work, done)?;
    if let BaseInput::Image(from) = &base {
        if let Some(tag) = &from.pulled {
            work.pulled.borrow_mut().insert(tag.clone());
        }
    }
    let sources = image
        .imports
        .iter()
        .map(|import| fetch_import(image, import, options, work, done))
        .collect::<Result<Vec<_>, _>>()?;
    let env = match image.script() {
        Some(_) => run::environment(
            name,
            &image.build_env,
            &image.build_env_passthrough,
            std::env::vars(),
        )?,
        None => Vec::new(),
    };
    let key = cache_key(image, options, &base, &sources, &env)?;
    if options.cache {
        if let Some(hit) = cache.lookup(&key, &root, staging) {
            let finished = Done {
                manifest: hit.manifest.digest.clone(),
                rootfs: root.join("rootfs"),
                config: hit.config,
                layers: hit.layers,
            };
            return Ok((hit.manifest, finished, true));
        }
    }

    fs::remove_tree(&root)?;
    let rootfs = root.join("rootfs");
    let lower_empty = root.join("empty");
    let created = image::rfc3339(options.epoch);
    let mut layers = Vec::new();
    let mut config = ImageConfig {
        architecture: options.platform.architecture.clone(),
        os: options.platform.os.clone(),
        variant: options.platform.variant.clone(),
        ..ImageConfig::default()
    };
    // The base, and the tree the new layer is a diff against.
    let lower: PathBuf = match &base {
        BaseInput::Scratch => {
            fs::mkdirs_755(&lower_empty)?;
            fs::mkdirs_755(&rootfs)?;
            lower_empty.clone()
        }
        BaseInput::Tar { path, shown } => {
            let base = root.join("base");
            fs::mkdirs_755(&base)?;
            fs::unpack_tar(path, &base)?;
            // The base layer: the tar's contents, written reproducibly.
            let layer = write_layer(None, &base, options, staging)?;
            config.add_layer(
                layer.1.clone(),
                &created,
                &format!("oci-build: tar base {shown}"),
            );
            layers.push(layer.0);
            fs::copy_preserving(&base, &rootfs)?;
            base
        }
        BaseInput::Built(parent) => {
            config = parent.config.clone();
            layers = parent.layers.clone();
            fs::copy_preserving(&parent.rootfs, &rootfs)?;
            parent.rootfs.clone()
        }
        BaseInput::Image(from) => {
            let base = root.join("base");
            fs::mkdirs_755(&base)?;
            for layer in &from.layers {
                let blob = from.layout.blob_path(&layer.digest);
                let reader = from.layout.open_blob(&layer.digest, Some(layer.size))?;
                fs::apply_layer(reader, &blob, &base)?;
                staging.link(&blob, &layer.digest)?;
            }
            config = from.config.clone();
            layers = from.layers.clone();
            fs::copy_preserving(&base, &rootfs)?;
            base
        }
    };

    // Imports: copied into the image where they have a `dest`, otherwise
    // staged for `run` (see Import::target for where each lands).
    let imports_dir = root.join("imports");
    fs::mkdirs(&imports_dir)?;
    for (import, source) in image.imports.iter().zip(&sources) {
        let own = fs::Ownership {
            mode: import.mode,
            keep_modes: false,
            uid: import.uid.unwrap_or(0),
            gid: import.gid.unwrap_or(0),
        };
        let within = if import.dest.is_some() {
            &rootfs
        } else {
            &imports_dir
        };
        let target = fs::inside(within, &import.target())?;
        fs::copy_normalized(source, &target, own)?;
    }
    for overlay in &image.overlay_dirs {
        let dest = fs::inside(&rootfs, &overlay.dest)?;
        // As they are (permission bits kept, as stacker keeps them), but
        // owned by root: the builder's uid means nothing in the image.
        let own = fs::Ownership {
            mode: None,
            keep_modes: true,
            uid: 0,
            gid: 0,
        };
        for entry in std::fs::read_dir(&overlay.source).map_err(|e| BuildError::Import {
            image: name.clone(),
            path: overlay.source.display().to_string(),
            message: format!("overlay_dirs source cannot be read: {e}"),
        })? {
            let entry = entry.map_err(|e| BuildError::Io {
                path: overlay.source.clone(),
                source: e,
            })?;
            fs::copy_normalized(&entry.path(), &dest.join(entry.file_name()), own)?;
        }
    }
    if let Some(script) = image.script() {
        let mut mounts = import_mounts(image, &imports_dir);
        for bind in &image.binds {
            mounts.push(run::Mount {
                source: bind.source.clone(),
                dest: bind.dest.clone(),
                readonly: false,
            });
        }
        run::run(&run::RunStep {
            image: name,
            script: &script,
            rootfs: &rootfs,
            bundle: &options.work_dir.join("bundles").join(name),
            mounts,
            build_env: &image.build_env,
            passthrough: &image.build_env_passthrough,
            runtime: &options.runtime,
            echo: options.echo.clone(),
        })?;
    }
    // The new layer: what changed from the base, by content.
    let (descriptor, diff_id, stats) = write_layer_stats(Some(&lower), &rootfs, options, staging)?;
    if stats.entries > 0 {
        config.add_layer(diff_id, &created, &format!("oci-build: {name}"));
        layers.push(descriptor);
    } else {
        config.add_empty_history(&created, &format!("oci-build: {name}"));
    }
    fs::remove_tree(&lower_empty)?;
    let generated = match image.label_script() {
        Some(script) => generate_labels(image, &script, &root, &imports_dir, options)?,
        None => BTreeMap::new(),
    };

    // The config.
    config.created = Some(created);
    if let Some(os) = &image.os {
        config.os = os.clone();
    }
    if let Some(arch) = &image.arch {
        config.architecture = arch.clone();
    }
    for (k, v) in &image.environment {
        config.set_env(k, v);
    }
    for (k, v) in image.labels.iter().chain(&generated) {
        config.config.labels.insert(k.clone(), v.clone());
    }
    for volume in &image.volumes {
        config
            .config
            .volumes
            .insert(volume.clone(), serde_json::json!({}));
    }
    if let Some(dir) = &image.working_dir {
        config.config.working_dir = Some(dir.clone());
    }
    if let Some(user) = &image.runtime_user {
        config.config.user = Some(user.clone());
    }
    if let Some(full) = &image.full_command {
        config.config.entrypoint = Some(full.clone());
        config.config.cmd = None;
    }
    if let Some(entrypoint) = &image.entrypoint {
        config.config.entrypoint = Some(entrypoint.clone());
    }
    if let Some(cmd) = &image.cmd {
        config.config.cmd = Some(cmd.clone());
    }
    let config_bytes = config.to_bytes();
    let config_desc = staging.put_bytes(manifest::OCI_CONFIG, &config_bytes)?;
    let manifest_bytes = image::manifest_bytes(&config_desc, &layers, &image.annotations);
    let mut manifest_desc = staging.put_bytes(manifest::OCI_MANIFEST, &manifest_bytes)?;
    manifest_desc.platform = Some(manifest::Platform {
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        variant: config.variant.clone(),
        extra: BTreeMap::new(),
    });
    fs::remove_tree(&imports_dir)?;
    cache.store(&key, &manifest_desc, &root)?;
    Ok((
        manifest_desc.clone(),
        Done {
            manifest: manifest_desc.digest,
            rootfs,
            config,
            layers,
        },
        false,
    ))
}

/// The read-only mounts of the imports directory in a `run` container.
fn import_mounts(image: &Image, imports_dir: &Path) -> Vec<run::Mount> {
    image
        .imports_dirs()
        .iter()
        .map(|dest| run::Mount {
            source: imports_dir.to_owned(),
            dest: (*dest).to_owned(),
            readonly: true,
        })
        .collect()
}

/// Runs `generate_labels` over a throwaway copy of the finished root
/// filesystem (its changes are not recorded, as in stacker) and returns the
/// labels it wrote: each file in `/oci-labels` (also visible as
/// `/stacker/oci-labels`) is a label named after the file, its content the
/// value.
fn generate_labels(
    image: &Image,
    script: &str,
    root: &Path,
    imports_dir: &Path,
    options: &BuildOptions,
) -> Result<BTreeMap<String, String>, BuildError> {
    let scratch = root.join("labels-rootfs");
    let labels_dir = root.join("oci-labels");
    fs::remove_tree(&scratch)?;
    fs::remove_tree(&labels_dir)?;
    fs::copy_preserving(&root.join("rootfs"), &scratch)?;
    fs::mkdirs(&labels_dir)?;
    // The mount point of /stacker/oci-labels, for when /stacker itself is
    // the read-only imports mount (the legacy `import`).
    fs::mkdirs(&imports_dir.join("oci-labels"))?;
    let mut mounts = import_mounts(image, imports_dir);
    mounts.extend([
        run::Mount {
            source: labels_dir.clone(),
            dest: "/oci-labels".into(),
            readonly: false,
        },
        run::Mount {
            source: labels_dir.clone(),
            dest: "/stacker/oci-labels".into(),
            readonly: false,
        },
    ]);
    let step_name = format!("{} (generate_labels)", image.name);
    run::run(&run::RunStep {
        image: &step_name,
        script,
        rootfs: &scratch,
        bundle: &options.work_dir.join("bundles").join(&image.name),
        mounts,
        build_env: &image.build_env,
        passthrough: &image.build_env_passthrough,
        runtime: &options.runtime,
        echo: options.echo.clone(),
    })?;
    let mut labels = BTreeMap::new();
    let entries = std::fs::read_dir(&labels_dir).map_err(|e| BuildError::Io {
        path: labels_dir.clone(),
        source: e,
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| BuildError::Io {
            path: labels_dir.clone(),
            source: e,
        })?;
        let label = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).map_err(|e| BuildError::Io {
            path: entry.path(),
            source: e,
        })?;
        let value = String::from_utf8(bytes).map_err(|_| BuildError::Runtime {
            image: image.name.clone(),
            message: format!(
                "generate_labels wrote /oci-labels/{label}, which is not UTF-8 text (a label value must be text)"
            ),
        })?;
        labels.insert(label, value);
    }
    fs::remove_tree(&scratch)?;
    fs::remove_tree(&labels_dir)?;
    Ok(labels)
}

/// Where an import's content is on the host, fetched and checked.
fn fetch_import(
    image: &Image,
    import: &crate::stacker::Import,
    options: &BuildOptions,
    work: &Work,
    done: &BTreeMap<String, Done>,
) -> Result<PathBuf, BuildError> {
    let fail = |message: String| BuildError::Import {
        image: image.name.clone(),
        path: import.path.clone(),
        message,
    };
    let path = match import.source() {
        ImportSource::Local(path) => {
            if std::fs::symlink_metadata(path).is_err() {
                return Err(fail("no such file or directory (check the path; relative paths start at the stacker.yaml's directory)".into()));
            }
            path.to_owned()
        }
        ImportSource::Http(url) => {
            download(work, &image.name, url, options, import.hash.as_deref())?
        }
        ImportSource::Stacker { image: other, path } => {
            let other_done = done
                .get(other)
                .ok_or_else(|| fail(format!("image {other} has not been built")))?;
            let p = fs::inside(&other_done.rootfs, path)?;
            if std::fs::symlink_metadata(&p).is_err() {
                return Err(fail(format!("image {other} has no {path}")));
            }
            p
        }
    };
    // A hash names a file's bytes; on a directory stacker ignores it, and
    // so does oci-build (the plan warns about it, see stacker::load).
    if let Some(expected) = import.hash.as_ref().filter(|_| !path.is_dir()) {
        let actual = cache::sha256_file(&path)?.hex().to_owned();
        if &actual != expected {
            return Err(BuildError::HashMismatch {
                image: image.name.clone(),
                path: import.path.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(path)
}

fn write_layer(
    lower: Option<&Path>,
    upper: &Path,
    options: &BuildOptions,
    staging: &output::Staging,
) -> Result<(Descriptor, Digest), BuildError> {
    let (d, id, _) = write_layer_stats(lower, upper, options, staging)?;
    Ok((d, id))
}

fn write_layer_stats(
    lower: Option<&Path>,
    upper: &Path,
    options: &BuildOptions,
    staging: &output::Staging,
) -> Result<(Descriptor, Digest, tree::TreeStats), BuildError> {
    let (file, tmp) = staging.temp()?;
    let file = WritebackFile::new(file).map_err(|e| BuildError::Io {
        path: tmp.clone(),
        source: e,
    })?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let writer = LayerWriter::new(out, options.compression).map_err(|e| BuildError::Io {
        path: tmp.clone(),
        source: e,
    })?;
    let (writer, stats) = tree::write_diff(lower, upper, writer, options.epoch)?;
    let (out, digests) = writer.finish().map_err(|e| BuildError::Io {
        path: tmp.clone(),
        source: e,
    })?;
    let file = out.into_inner().map_err(|e| BuildError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    // The rest of the writeback happens in the commit's fsync.
    file.finish().map_err(|e| BuildError::Io {
        path: tmp.clone(),
        source: e,
    })?;
    staging.commit(&tmp, &digests.digest)?;
    let descriptor = Descriptor::new(
        options.compression.oci_media_type(),
        digests.digest,
        digests.size,
    );
    Ok((descriptor, digests.diff_id, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_as_docker_writes_them() {
        let p = parse_platform("linux/arm/v7").expect("ok");
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "arm"));
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(parse_platform("linux/amd64").expect("ok").variant, None);
        for (bad, want) in [
            ("linux", "platform \"linux\" is not OS/ARCH[/VARIANT]"),
            ("linux/", "is not OS/ARCH"),
            ("/amd64", "is not OS/ARCH"),
            ("linux/arm/", "has an empty variant"),
            ("a/b/c/d", "is not OS/ARCH"),
        ] {
            let err = parse_platform(bad).expect_err(bad);
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}

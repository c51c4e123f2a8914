//! Image bases, `from: {type: oci}` and `from: {type: docker}`: an existing
//! OCI image that a stacker.yaml builds on.
//!
//! An `oci` base is a tag in a local layout (`url: layout:tag`, split at the
//! first colon, as stacker does). A `docker` base is an image reference of
//! any transport ocikit reads (`docker://…`, `oci:path:tag`,
//! `oci-archive:file:tag`); a registry image is pulled with ocikit's copy
//! engine into a layout in the work directory, once per manifest digest, so
//! an unchanged base costs one manifest request. `insecure: true` allows
//! plain HTTP and unverified TLS. When the image is an index, the manifest
//! for the build's platform is picked; without one the error lists the
//! platforms there are.
//!
//! The base's layers are kept as they are (media types in their OCI
//! spelling, the blobs unchanged), its config carries over (history,
//! environment, entrypoint), and its layers are unpacked in order, with
//! whiteouts applied, into the tree the new layer is a diff against.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::copy::{self, CopyOptions, Format, MultiArch, NoProgress, Source};
use crate::image::ImageConfig;
use crate::layout::Layout;
use crate::manifest::{self, Descriptor, Manifest, ManifestKind, Platform};
use crate::reference::{ImageReference, LayoutReference};
use crate::registry::ClientOptions;
use crate::stacker::Base;

use super::BuildError;

/// An image base, found and pulled, not yet unpacked.
pub struct ImageBase {
    /// The layout that holds it (the user's, or the pulled copy).
    pub layout: Layout,
    /// The manifest for the build's platform.
    pub manifest: Descriptor,
    /// Its config.
    pub config: ImageConfig,
    /// Its layers, bottom first, media types in their OCI spelling.
    pub layers: Vec<Descriptor>,
    /// How history and messages name it.
    pub shown: String,
    /// Its tag in the work directory's layout of pulled bases, when it was
    /// pulled there (a registry or archive base).
    pub pulled: Option<String>,
}

fn fail(image: &str, base: &str, message: String) -> BuildError {
    BuildError::Base {
        image: image.to_owned(),
        base: base.to_owned(),
        message,
    }
}

/// Finds (and, for a registry, pulls) the base of `image` for `platform`.
/// `pulled` is the layout registry bases are pulled into.
pub fn resolve(
    image: &str,
    from: &Base,
    platform: &Platform,
    pulled: &Path,
) -> Result<ImageBase, BuildError> {
    match from {
        Base::Oci { layout, tag } => {
            let shown = format!("oci {layout}:{tag}");
            let reference = LayoutReference {
                path: PathBuf::from(layout),
                tag: Some(tag.clone()),
                digest: None,
            };
            from_layout(image, &shown, &reference, platform)
        }
        Base::Docker { url, insecure } => {
            let reference =
                ImageReference::parse(url).map_err(|e| fail(image, url, format!("{e}")))?;
            match &reference {
                ImageReference::Layout(r) => from_layout(image, url, r, platform),
                _ => pull(image, url, &reference, *insecure, platform, pulled),
            }
        }
        other => Err(fail(
            image,
            other.kind(),
            "not an image base (this is a bug in oci-build)".into(),
        )),
    }
}

/// The entry of `index` for `platform`, or an error listing what it has.
fn pick<'a>(
    image: &str,
    shown: &str,
    manifests: &'a [Descriptor],
    platform: &Platform,
) -> Result<&'a Descriptor, BuildError> {
    let matches = |p: &Platform| {
        p.os == platform.os
            && p.architecture == platform.architecture
            && (platform.variant.is_none() || p.variant == platform.variant)
    };
    manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(matches))
        .ok_or_else(|| {
            let available: Vec<String> = manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(platform_name)
                .collect();
            fail(
                image,
                shown,
                format!(
                    "the image index has no manifest for {} (it has: {}); build for one of those with --platform",
                    platform_name(platform),
                    if available.is_empty() {
                        "none with a platform".to_owned()
                    } else {
                        available.join(", ")
                    }
                ),
            )
        })
}

/// `os/arch[/variant]`.
pub fn platform_name(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

fn from_layout(
    image: &str,
    shown: &str,
    reference: &LayoutReference,
    platform: &Platform,
) -> Result<ImageBase, BuildError> {
    let layout = Layout::open(&reference.path).map_err(|e| fail(image, shown, format!("{e}")))?;
    let root = layout
        .resolve(reference.tag.as_deref(), reference.digest.as_ref())
        .map_err(|e| fail(image, shown, format!("{e}")))?;
    let manifest = if manifest::is_index(&root.media_type) {
        let bytes = layout.read_manifest(&root.digest)?;
        let parsed = Manifest::parse(&bytes, Some(&root.media_type))
            .map_err(|e| fail(image, shown, format!("index {}: {e}", root.digest)))?;
        let ManifestKind::Index { manifests } = parsed.kind else {
            return Err(fail(image, shown, "its index is not an index".into()));
        };
        pick(image, shown, &manifests, platform)?.clone()
    } else {
        root
    };
    let bytes = layout.read_manifest(&manifest.digest)?;
    let parsed = Manifest::parse(&bytes, Some(&manifest.media_type))
        .map_err(|e| fail(image, shown, format!("manifest {}: {e}", manifest.digest)))?;
    let ManifestKind::Image { config, layers } = parsed.kind else {
        return Err(fail(
            image,
            shown,
            format!("{} is not an image manifest", manifest.digest),
        ));
    };
    let config_bytes = layout.read_manifest(&config.digest)?;
    let config = ImageConfig::parse(&config_bytes)
        .map_err(|e| fail(image, shown, format!("config {}: {e}", config.digest)))?;
    let layers = layers
        .into_iter()
        .map(|mut layer| {
            layer.media_type = copy::convert::convert_media_type(&layer.media_type, Format::Oci)
                .map_err(|e| fail(image, shown, format!("layer {}: {e}", layer.digest)))?;
            if crate::layer::Compression::from_media_type(&layer.media_type).is_none() {
                return Err(fail(
                    image,
                    shown,
                    format!(
                        "layer {} has media type {}, which is not a filesystem layer",
                        layer.digest, layer.media_type
                    ),
                ));
            }
            Ok(layer)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ImageBase {
        layout,
        manifest,
        config,
        layers,
        shown: shown.to_owned(),
        pulled: None,
    })
}

/// Pulls a registry (or archive) base into the `pulled` layout, tagged with
/// the source manifest's digest so an unchanged base is not pulled again.
fn pull(
    image: &str,
    shown: &str,
    reference: &ImageReference,
    insecure: bool,
    platform: &Platform,
    pulled: &Path,
) -> Result<ImageBase, BuildError> {
    let registry = ClientOptions {
        tls_verify: insecure.then_some(false),
        ..ClientOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| fail(image, shown, format!("starting the HTTP client: {e}")))?;
    let wrap = |e: copy::CopyError| fail(image, shown, format!("{e}"));
    let source_digest = runtime.block_on(async {
        let source = Source::open(reference, &registry).await.map_err(wrap)?;
        let root = source.resolve(reference).await.map_err(wrap)?;
        if !manifest::is_index(&root.media_type) {
            return Ok(root.digest);
        }
        let bytes = source.manifest(&root).await.map_err(wrap)?;
        let parsed = Manifest::parse(&bytes, Some(&root.media_type))
            .map_err(|e| fail(image, shown, format!("index {}: {e}", root.digest)))?;
        let ManifestKind::Index { manifests } = parsed.kind else {
            return Ok(root.digest);
        };
        Ok::<_, BuildError>(pick(image, shown, &manifests, platform)?.digest.clone())
    })?;
    let tag = source_digest.to_tag_form();
    let local = LayoutReference {
        path: pulled.to_owned(),
        tag: Some(tag.clone()),
        digest: None,
    };
    let have = Layout::open(pulled)
        .ok()
        .is_some_and(|l| l.tags().is_ok_and(|tags| tags.contains(&tag)));
    if !have {
        let options = CopyOptions {
            multi_arch: MultiArch::Whole,
            remove_signatures: true,
            format: Some(Format::Oci),
            source_registry: registry,
            ..CopyOptions::default()
        };
        runtime
            .block_on(copy::copy(
                &reference.pinned(source_digest),
                &ImageReference::Layout(local.clone()),
                &options,
                Arc::new(NoProgress),
            ))
            .map_err(wrap)?;
    }
    let mut base = from_layout(image, shown, &local, platform)?;
    base.pulled = Some(tag);
    Ok(base)
}

/// Keeps only the bases tagged `used` in the layout of pulled bases at
/// `pulled` (all of it goes when none is used), and the blobs those need:
/// a base a build no longer names costs no disk after it. A base needed
/// again is pulled again.
pub fn prune_pulled(
    pulled: &Path,
    used: &std::collections::BTreeSet<String>,
) -> Result<(), BuildError> {
    if !pulled.join("index.json").exists() {
        return Ok(());
    }
    if used.is_empty() {
        return super::fs::remove_tree(pulled);
    }
    let io = |path: &Path, e: std::io::Error| BuildError::Io {
        path: path.to_owned(),
        source: e,
    };
    let layout = Layout::open(pulled)?;
    let kept: Vec<Descriptor> = layout
        .manifests()?
        .into_iter()
        .filter(|d| {
            d.annotation(crate::layout::REF_NAME)
                .is_some_and(|t| used.contains(t))
        })
        .collect();
    let mut keep = std::collections::BTreeSet::new();
    let mut stack = kept.clone();
    while let Some(descriptor) = stack.pop() {
        if !keep.insert(descriptor.digest.clone())
            || !manifest::is_manifest_type(&descriptor.media_type)
        {
            continue;
        }
        let bytes = layout.read_manifest(&descriptor.digest)?;
        if let Ok(parsed) = Manifest::parse(&bytes, Some(&descriptor.media_type)) {
            stack.extend(parsed.references().into_iter().cloned());
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": kept,
    });
    let index_path = pulled.join("index.json");
    let mut tmp = tempfile::NamedTempFile::new_in(pulled).map_err(|e| io(pulled, e))?;
    std::io::Write::write_all(&mut tmp, index.to_string().as_bytes())
        .map_err(|e| io(&index_path, e))?;
    tmp.persist(&index_path)
        .map_err(|e| io(&index_path, e.error))?;
    let blobs = pulled.join("blobs/sha256");
    for entry in std::fs::read_dir(&blobs).map_err(|e| io(&blobs, e))? {
        let entry = entry.map_err(|e| io(&blobs, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = crate::digest::Digest::new(crate::digest::Algorithm::Sha256, &name)
            .is_ok_and(|d| keep.contains(&d));
        if !wanted {
            std::fs::remove_file(entry.path()).map_err(|e| io(&entry.path(), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: arch.into(),
            os: os.into(),
            variant: variant.map(str::to_owned),
            extra: Default::default(),
        }
    }

    #[test]
    fn picks_the_platform_or_lists_the_others() {
        let digest = crate::digest::Digest::sha256_of(b"m");
        let entry = |p: Platform| {
            let mut d = Descriptor::new(manifest::OCI_MANIFEST, digest.clone(), 1);
            d.platform = Some(p);
            d
        };
        let manifests = [
            entry(platform("linux", "amd64", None)),
            entry(platform("linux", "arm", Some("v7"))),
        ];
        assert!(pick("i", "b", &manifests, &platform("linux", "amd64", None)).is_ok());
        assert!(pick("i", "b", &manifests, &platform("linux", "arm", None)).is_ok());
        let err =
            pick("i", "b", &manifests, &platform("linux", "arm64", None)).expect_err("no arm64");
        assert_eq!(
            err.to_string(),
            "image i: base b: the image index has no manifest for linux/arm64 (it has: linux/amd64, linux/arm/v7); build for one of those with --platform"
        );
    }
}

//! Image references in skopeo's transport syntax: where an image lives.
//!
//! Every tool takes image arguments in the same forms, so scripts written for
//! skopeo keep working:
//!
//! - `oci:PATH[:TAG]` an OCI image layout directory (plus the ocikit extension
//!   `oci:PATH@DIGEST`, which skopeo 1.9 cannot read: accepted, never written
//!   where skopeo may read it); without a tag or digest it means the
//!   layout's one image, its untagged referrers (signatures, SBOMs) and
//!   extra tags not counting as other images;
//! - `oci-archive:FILE[:TAG]` a tar of such a layout;
//! - `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]` a registry, and the same without
//!   the `docker://` prefix, as cosign and kubectl write it.
//!
//! Docker Hub names normalise as everywhere (`alpine` is
//! `docker.io/library/alpine`, served by `registry-1.docker.io`). Any other
//! transport (`docker-archive:`, `dir:`, `containers-storage:` …) is an error
//! that names the supported ones, never a Docker Hub name by accident.
//!
//! A destination ending in `/` is a repository *prefix* ([`Target::Prefix`]):
//! each image copied there lands at PREFIX + its repository name (see
//! [`Prefix::join`]).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;
use crate::name::{validate_repository, validate_tag};

/// The registry that serves Docker Hub's `docker.io` names.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// The canonical name of Docker Hub in references.
pub const DOCKER_HUB: &str = "docker.io";

/// The syntax every usage error shows, so the fix is on screen.
pub const SYNTAX: &str = "supported image references: oci:PATH[:TAG], oci:PATH@DIGEST, \
oci-archive:FILE[:TAG], docker://HOST[:PORT]/REPO[:TAG|@DIGEST], or HOST/REPO[:TAG|@DIGEST] \
(a destination ending in '/' is a repository prefix)";

/// Transports skopeo knows that ocikit does not read or write; naming them
/// turns a likely typo into a clear usage error.
const UNSUPPORTED_TRANSPORTS: &[&str] = &[
    "docker-archive",
    "docker-daemon",
    "dir",
    "containers-storage",
    "ostree",
    "sif",
    "tarball",
    "atomic",
    "oci-layout",
];

/// Why an image reference could not be parsed. Every variant is a usage error
/// (exit code 2) and its message ends with [`SYNTAX`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// A transport ocikit does not support.
    #[error("{input:?}: unsupported transport {transport:?}; {SYNTAX}")]
    UnsupportedTransport {
        /// The reference as given.
        input: String,
        /// The transport name before the colon.
        transport: String,
    },
    /// The reference is malformed for its transport.
    #[error("{input:?}: {reason}; {SYNTAX}")]
    Malformed {
        /// The reference as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ReferenceError {
    fn malformed(input: &str, reason: impl fmt::Display) -> ReferenceError {
        ReferenceError::Malformed {
            input: input.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Where an image lives: a layout, an archive or a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    /// `oci:PATH[:TAG]` or `oci:PATH@DIGEST`.
    Layout(LayoutReference),
    /// `oci-archive:FILE[:TAG]`.
    Archive(LayoutReference),
    /// `docker://…` or a bare `HOST/REPO…`.
    Registry(RegistryReference),
}

/// An image inside a layout directory or archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutReference {
    /// The directory (`oci:`) or tar file (`oci-archive:`).
    pub path: PathBuf,
    /// The `org.opencontainers.image.ref.name` to read or write.
    pub tag: Option<String>,
    /// The ocikit `@DIGEST` extension: the manifest to read.
    pub digest: Option<Digest>,
}

/// An image in a registry repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryReference {
    /// The registry as written, normalised (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository (`library/alpine`).
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any; it wins over the tag when reading.
    pub digest: Option<Digest>,
}

/// A parsed destination: one image, or a repository prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One image reference.
    Image(ImageReference),
    /// A destination ending in `/`.
    Prefix(Prefix),
}

/// A repository prefix: `docker://HOST/[PATH/]`, `HOST/[PATH/]`, `oci:DIR/` or
/// `oci-archive:DIR/`.
///
/// The rule: each image lands at PREFIX + NAME, keeping its tag, where NAME is
/// the `name` field of its JSON line if present, else the last path component
/// of a `docker://` source's repository, else the tag (ref name) of an `oci:`
/// or `oci-archive:` source. For `oci:DIR/` the NAME is a layout directory
/// inside DIR, for `oci-archive:DIR/` an archive file `NAME.tar` inside DIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefix {
    /// `docker://HOST/PATH/`: registry and a repository path prefix (maybe empty).
    Registry {
        /// The registry.
        registry: String,
        /// The repository path before the name (`team/` or empty).
        path: String,
    },
    /// `oci:DIR/`.
    Layout(PathBuf),
    /// `oci-archive:DIR/`.
    Archive(PathBuf),
}

impl Prefix {
    /// The destination for an image called `name` with `tag` under this prefix.
    pub fn join(&self, name: &str, tag: Option<&str>) -> Result<ImageReference, ReferenceError> {
        let shown = format!("{self}{name}");
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|e| ReferenceError::malformed(&shown, e))?;
        }
        let tag = tag.map(str::to_owned);
        match self {
            Prefix::Registry { registry, path } => {
                let repository = format!("{path}{name}");
                validate_repository(&repository)
                    .map_err(|e| ReferenceError::malformed(&shown, e))?;
                Ok(ImageReference::Registry(RegistryReference {
                    registry: registry.clone(),
                    repository,
                    tag,
                    digest: None,
                }))
            }
            Prefix::Layout(dir) | Prefix::Archive(dir) => {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err(ReferenceError::malformed(
                        &shown,
                        "a layout name under a prefix is one path component",
                    ));
                }
                let is_archive = matches!(self, Prefix::Archive(_));
                let path = if is_archive {
                    dir.join(format!("{name}.tar"))
                } else {
                    dir.join(name)
                };
                let layout = LayoutReference {
                    path,
                    tag,
                    digest: None,
                };
                Ok(if is_archive {
                    ImageReference::Archive(layout)
                } else {
                    ImageReference::Layout(layout)
                })
            }
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::Registry { registry, path } => write!(f, "docker://{registry}/{path}"),
            Prefix::Layout(dir) => write!(f, "oci:{}/", dir.display()),
            Prefix::Archive(dir) => write!(f, "oci-archive:{}/", dir.display()),
        }
    }
}

impl Target {
    /// Parses a destination argument: a prefix when it ends in `/`.
    pub fn parse(input: &str) -> Result<Target, ReferenceError> {
        let Some(stripped) = input.strip_suffix('/') else {
            return ImageReference::parse(input).map(Target::Image);
        };
        let (transport, rest) = split_transport(input)?;
        let rest_stripped = rest.strip_suffix('/').unwrap_or(rest);
        match transport {
            Some("oci") | Some("oci-archive") => {
                if rest_stripped.is_empty() && rest != "/" {
                    return Err(ReferenceError::malformed(input, "the directory is empty"));
                }
                let dir = PathBuf::from(if rest == "/" { "/" } else { rest_stripped });
                Ok(Target::Prefix(if transport == Some("oci") {
                    Prefix::Layout(dir)
                } else {
                    Prefix::Archive(dir)
                }))
            }
            _ => {
                let body = match transport {
                    Some(_) => rest_stripped.trim_start_matches('/'),
                    None => stripped,
                };
                let (registry, path) = match body.split_once('/') {
                    Some((host, path)) => (host, format!("{path}/")),
                    None => (body, String::new()),
                };
                if !looks_like_registry(registry) {
                    return Err(ReferenceError::malformed(
                        input,
                        "a repository prefix starts with a registry host (HOST[:PORT]/)",
                    ));
                }
                let registry = normalise_registry(input, registry)?;
                if !path.is_empty() {
                    validate_repository(path.trim_end_matches('/'))
                        .map_err(|e| ReferenceError::malformed(input, e))?;
                }
                Ok(Target::Prefix(Prefix::Registry { registry, path }))
            }
        }
    }
}

impl ImageReference {
    /// Parses an image argument.
    pub fn parse(input: &str) -> Result<ImageReference, ReferenceError> {
        let (transport, rest) = split_transport(input)?;
        match transport {
            Some("oci") => parse_layout(input, rest).map(ImageReference::Layout),
            Some("oci-archive") => {
                let r = parse_layout(input, rest)?;
                if r.digest.is_some() {
                    return Err(ReferenceError::malformed(
                        input,
                        "oci-archive: takes a tag, not a digest",
                    ));
                }
                Ok(ImageReference::Archive(r))
            }
            Some(_) => parse_registry(input, rest.strip_prefix("//").unwrap_or(rest))
                .map(ImageReference::Registry),
            None => parse_registry(input, rest).map(ImageReference::Registry),
        }
    }

    /// The tag, whichever transport.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageReference::Layout(r) | ImageReference::Archive(r) => r.tag.as_deref(),
            ImageReference::Registry(r) => r.tag.as_deref(),
        }
    }

    /// The digest pin, whichever transport.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            ImageReference::Layout(r) | ImageReference::Archive(r) => r.digest.as_ref(),
            ImageReference::Registry(r) => r.digest.as_ref(),
        }
    }

    /// The same reference pinned to `digest` (the `-` stdin contract). An
    /// archive's pin is internal (the syntax has no `@DIGEST` for it): the
    /// manifest is then looked up by digest inside the archive.
    pub fn pinned(&self, digest: Digest) -> ImageReference {
        let mut pinned = self.clone();
        match &mut pinned {
            ImageReference::Layout(r) | ImageReference::Archive(r) => r.digest = Some(digest),
            ImageReference::Registry(r) => r.digest = Some(digest),
        }
        pinned
    }

    /// The repository name used under a destination prefix when the input has
    /// no `name`: a registry repository's last component, else the layout's tag.
    pub fn default_name(&self) -> Option<&str> {
        match self {
            ImageReference::Registry(r) => r.repository.rsplit('/').next(),
            ImageReference::Layout(r) | ImageReference::Archive(r) => r.tag.as_deref(),
        }
    }

    /// The same reference without a digest (what is printed where skopeo may
    /// read it).
    pub fn without_digest(&self) -> ImageReference {
        let mut r = self.clone();
        match &mut r {
            ImageReference::Layout(l) | ImageReference::Archive(l) => l.digest = None,
            ImageReference::Registry(g) => g.digest = None,
        }
        r
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageReference::Layout(r) => write!(f, "oci:{r}"),
            ImageReference::Archive(r) => write!(f, "oci-archive:{r}"),
            ImageReference::Registry(r) => write!(f, "docker://{r}"),
        }
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<ImageReference, ReferenceError> {
        ImageReference::parse(s)
    }
}

impl fmt::Display for LayoutReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl RegistryReference {
    /// The host that serves the API: `registry-1.docker.io` for `docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// Whether the registry is on loopback (`localhost`, `127.0.0.0/8`,
    /// `[::1]`), which Docker treats as an insecure registry.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }

    /// The tag or digest to fetch: the digest if pinned, else the tag, else `latest`.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// `HOST/REPO`, as skopeo's inspect prints `Name`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for RegistryReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether `registry` (`HOST[:PORT]`) names a loopback address.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| ip.octets()[0] == 127)
}

/// Splits `transport:rest`. `None` means a bare registry reference. A name
/// before a colon that is followed by a port (`localhost:5000/x`) or a tag
/// (`alpine:3`) is not a transport.
fn split_transport(input: &str) -> Result<(Option<&str>, &str), ReferenceError> {
    if input.is_empty() {
        return Err(ReferenceError::malformed(input, "the reference is empty"));
    }
    let Some((head, rest)) = input.split_once(':') else {
        return Ok((None, input));
    };
    match head {
        "oci" | "oci-archive" => Ok((Some(head), rest)),
        "docker" => {
            if rest.starts_with("//") {
                Ok((Some(head), rest))
            } else {
                Err(ReferenceError::malformed(
                    input,
                    "a docker reference must start with docker://",
                ))
            }
        }
        _ if UNSUPPORTED_TRANSPORTS.contains(&head) || rest.starts_with("//") => {
            Err(ReferenceError::UnsupportedTransport {
                input: input.to_owned(),
                transport: head.to_owned(),
            })
        }
        _ => Ok((None, input)),
    }
}

fn parse_layout(input: &str, rest: &str) -> Result<LayoutReference, ReferenceError> {
    // `@sha256:` marks the digest extension; otherwise the first colon starts
    // the tag, as skopeo splits it.
    let (path, tag, digest) = match rest.rfind('@') {
        Some(at) if rest[at + 1..].contains(':') && !rest[at + 1..].contains('/') => {
            let digest = rest[at + 1..]
                .parse::<Digest>()
                .map_err(|e| ReferenceError::malformed(input, e))?;
            (&rest[..at], None, Some(digest))
        }
        _ => match rest.split_once(':') {
            Some((path, tag)) => (path, Some(tag), None),
            None => (rest, None, None),
        },
    };
    if path.is_empty() {
        return Err(ReferenceError::malformed(input, "the path is empty"));
    }
    if let Some(tag) = tag {
        validate_tag(tag).map_err(|e| ReferenceError::malformed(input, e))?;
    }
    Ok(LayoutReference {
        path: PathBuf::from(path),
        tag: tag.map(str::to_owned),
        digest,
    })
}

fn parse_registry(input: &str, body: &str) -> Result<RegistryReference, ReferenceError> {
    if body.is_empty() {
        return Err(ReferenceError::malformed(input, "the repository is empty"));
    }
    let (name, digest) = match body.split_once('@') {
        Some((name, digest)) => {
            let digest = digest
                .parse::<Digest>()
                .map_err(|e| ReferenceError::malformed(input, e))?;
            (name, Some(digest))
        }
        None => (body, None),
    };
    // A tag is after the last colon, if that colon is after the last slash.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(tag) = tag {
        validate_tag(tag).map_err(|e| ReferenceError::malformed(input, e))?;
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if looks_like_registry(first) => {
            (normalise_registry(input, first)?, rest.to_owned())
        }
        _ => (DOCKER_HUB.to_owned(), name.to_owned()),
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    validate_repository(&repository).map_err(|e| ReferenceError::malformed(input, e))?;
    Ok(RegistryReference {
        registry,
        repository,
        tag: tag.map(str::to_owned),
        digest,
    })
}

/// Docker's rule: the first component is a registry if it has a `.` or a `:`,
/// or is `localhost`, or is an IPv6 literal.
fn looks_like_registry(component: &str) -> bool {
    component.contains('.')
        || component.contains(':')
        || component == "localhost"
        || component.starts_with('[')
}

fn normalise_registry(input: &str, registry: &str) -> Result<String, ReferenceError> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| ReferenceError::malformed(input, "unclosed '[' in the registry"))?;
        (host, after.strip_prefix(':'))
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(ReferenceError::malformed(
                input,
                format!("invalid registry port {port:?}"),
            ));
        }
    }
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    if !host_ok {
        return Err(ReferenceError::malformed(
            input,
            format!("invalid registry host {host:?}"),
        ));
    }
    if registry == "index.docker.io" || registry == DOCKER_HUB_API_HOST {
        return Ok(DOCKER_HUB.to_owned());
    }
    Ok(registry.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn reg(registry: &str, repo: &str, tag: Option<&str>, digest: bool) -> ImageReference {
        ImageReference::Registry(RegistryReference {
            registry: registry.into(),
            repository: repo.into(),
            tag: tag.map(Into::into),
            digest: digest.then(|| D.parse().expect("digest")),
        })
    }

    fn layout(path: &str, tag: Option<&str>, digest: bool) -> LayoutReference {
        LayoutReference {
            path: path.into(),
            tag: tag.map(Into::into),
            digest: digest.then(|| D.parse().expect("digest")),
        }
    }

    #[test]
    fn parses_every_transport() {
        let oci_digest = format!("oci:dir@{D}");
        let ghcr = format!("ghcr.io/o/r:t@{D}");
        let cases = vec![
            (
                "oci:out",
                ImageReference::Layout(layout("out", None, false)),
            ),
            (
                "oci:/tmp/x:1.0",
                ImageReference::Layout(layout("/tmp/x", Some("1.0"), false)),
            ),
            (
                &*oci_digest,
                ImageReference::Layout(layout("dir", None, true)),
            ),
            (
                "oci-archive:a.tar:v1",
                ImageReference::Archive(layout("a.tar", Some("v1"), false)),
            ),
            (
                "docker://127.0.0.1:5000/app:1.0",
                reg("127.0.0.1:5000", "app", Some("1.0"), false),
            ),
            (
                "docker://alpine",
                reg("docker.io", "library/alpine", None, false),
            ),
            (
                "alpine:3",
                reg("docker.io", "library/alpine", Some("3"), false),
            ),
            (
                "index.docker.io/team/x",
                reg("docker.io", "team/x", None, false),
            ),
            (
                "localhost:5000/a/b",
                reg("localhost:5000", "a/b", None, false),
            ),
            (&*ghcr, reg("ghcr.io", "o/r", Some("t"), true)),
            (
                "docker://[::1]:5000/app",
                reg("[::1]:5000", "app", None, false),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ImageReference::parse(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for input in [
            "oci:/tmp/x:1.0",
            "oci-archive:a.tar:v1",
            "docker://127.0.0.1:5000/app:1.0",
            "docker://docker.io/library/alpine",
        ] {
            let r = ImageReference::parse(input).expect(input);
            assert_eq!(r.to_string(), input);
            assert_eq!(ImageReference::parse(&r.to_string()), Ok(r));
        }
    }

    #[test]
    fn rejects_with_the_syntax() {
        let cases = [
            ("", "empty"),
            ("dir:/tmp/x", "unsupported transport \"dir\""),
            ("docker-archive:x.tar", "unsupported transport"),
            ("containers-storage:x", "unsupported transport"),
            ("http://reg/x", "unsupported transport \"http\""),
            ("docker:reg/x", "must start with docker://"),
            ("docker://Reg.io/X", "invalid repository name"),
            ("reg.io/app:bad tag", "invalid tag"),
            ("oci:", "path is empty"),
            ("oci:x:-bad", "invalid tag"),
            ("oci:x@sha256:abc", "64 lowercase hex"),
            ("oci-archive:x@sha256:abc", "64 lowercase hex"),
            ("reg.io:99999/app", "invalid registry port"),
            ("reg.io:http/app", "invalid registry port"),
        ];
        for (input, words) in cases {
            let err = ImageReference::parse(input).expect_err(input).to_string();
            assert!(err.contains(words), "{input}: {err}");
            assert!(err.contains("oci-archive:FILE[:TAG]"), "{input}: {err}");
        }
        let digest_archive = format!("oci-archive:x@{D}");
        let err = ImageReference::parse(&digest_archive).expect_err("archive digest");
        assert!(err.to_string().contains("not a digest"));
    }

    #[test]
    fn loopback_and_api_host() {
        for (input, loopback) in [
            ("localhost/a", true),
            ("localhost:5000/a", true),
            ("127.0.0.1:5000/a", true),
            ("127.9.9.9/a", true),
            ("[::1]:5000/a", true),
            ("128.0.0.1/a", false),
            ("reg.example/a", false),
            ("alpine", false),
        ] {
            let ImageReference::Registry(r) = ImageReference::parse(input).expect(input) else {
                panic!("{input}");
            };
            assert_eq!(r.is_loopback(), loopback, "{input}");
        }
        let ImageReference::Registry(hub) = ImageReference::parse("alpine").expect("hub") else {
            panic!("registry");
        };
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(hub.reference(), "latest");
        assert_eq!(hub.name(), "docker.io/library/alpine");
    }

    #[test]
    fn prefixes() {
        let cases = [
            (
                "docker://127.0.0.1:5000/",
                Prefix::Registry {
                    registry: "127.0.0.1:5000".into(),
                    path: String::new(),
                },
            ),
            (
                "reg.io/team/",
                Prefix::Registry {
                    registry: "reg.io".into(),
                    path: "team/".into(),
                },
            ),
            ("oci:out/", Prefix::Layout("out".into())),
            ("oci-archive:/tmp/", Prefix::Archive("/tmp".into())),
        ];
        for (input, want) in cases {
            assert_eq!(Target::parse(input), Ok(Target::Prefix(want)), "{input}");
        }
        let Ok(Target::Prefix(p)) = Target::parse("docker://127.0.0.1:5000/team/") else {
            panic!("prefix");
        };
        assert_eq!(
            p.join("app", Some("1.0")).expect("join").to_string(),
            "docker://127.0.0.1:5000/team/app:1.0"
        );
        let err = p.join("App", None).expect_err("bad name").to_string();
        assert!(err.contains("invalid repository name"), "{err}");
        let layout = Prefix::Layout("out".into());
        assert_eq!(
            layout.join("app", Some("v1")).expect("join").to_string(),
            "oci:out/app:v1"
        );
        assert!(layout.join("a/b", None).is_err());
        assert!(Target::parse("alpine/").is_err());
        assert_eq!(
            Target::parse("oci:x:1"),
            Ok(Target::Image(ImageReference::Layout(layout_ref())))
        );
    }

    fn layout_ref() -> LayoutReference {
        layout("x", Some("1"), false)
    }

    #[test]
    fn default_names_and_pins() {
        let r = ImageReference::parse("docker://reg.io/a/b/app:1").expect("parse");
        assert_eq!(r.default_name(), Some("app"));
        let d: Digest = D.parse().expect("digest");
        assert_eq!(
            r.pinned(d.clone()).to_string(),
            format!("docker://reg.io/a/b/app:1@{D}")
        );
        let l = ImageReference::parse("oci:dir:v2").expect("parse");
        assert_eq!(l.default_name(), Some("v2"));
        assert_eq!(l.pinned(d).without_digest().to_string(), "oci:dir:v2");
    }
}

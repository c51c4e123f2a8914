//! One stacker.yaml, read strictly: every directive stacker knows, in every
//! form real files use, and an error naming any directive it does not know.
//!
//! The file is parsed after substitution (see [`super::substitute`]). Values
//! are read the way stacker's YAML 1.1 parser reads them: `mode: 0777` is
//! octal, `runtime_user: 1000` is the string "1000", `build_only: yes` is
//! true, and YAML merge keys (`<<: *anchor`) apply to images and to maps
//! of strings, each scalar keeping its text (`1.20` stays "1.20"). Paths
//! that name things on the host (local imports, overlay
//! sources, binds, local tar bases, prerequisites) are made absolute against
//! the file's own directory, so a file means the same wherever it is built
//! from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::StackerError;

/// The directives an image may have, as stacker spells them.
pub const DIRECTIVES: &[&str] = &[
    "from",
    "imports",
    "import",
    "overlay_dirs",
    "run",
    "cmd",
    "entrypoint",
    "full_command",
    "build_env_passthrough",
    "build_env",
    "environment",
    "volumes",
    "labels",
    "generate_labels",
    "working_dir",
    "build_only",
    "binds",
    "runtime_user",
    "annotations",
    "os",
    "arch",
    "bom",
];

/// A parsed stacker.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackerFile {
    /// Where the file is (absolute).
    pub path: PathBuf,
    /// `config.prerequisites`, made absolute against the file's directory.
    pub prerequisites: Vec<PathBuf>,
    /// The images, in the order the file lists them.
    pub images: Vec<Image>,
    /// Things a person should know that do not stop the build (deprecated
    /// directives, ignored import keys), each naming the file.
    pub warnings: Vec<String>,
}

/// One image of a stacker.yaml and everything that builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image's name: its tag in the output layout.
    pub name: String,
    /// What it is built on.
    pub from: Base,
    /// Files brought in (`imports`, or the legacy `import`).
    pub imports: Vec<Import>,
    /// The imports came from the legacy `import` directive: without `dest`
    /// they are visible at `/stacker` and `/.stacker/imports` rather than
    /// `/stacker/imports`.
    pub legacy_import: bool,
    /// Host directories added to the image as they are.
    pub overlay_dirs: Vec<OverlayDir>,
    /// The lines of the `run` script (joined with newlines).
    pub run: Vec<String>,
    /// `cmd`, split into words.
    pub cmd: Option<Vec<String>>,
    /// `entrypoint`, split into words.
    pub entrypoint: Option<Vec<String>>,
    /// `full_command`: the entrypoint, clearing an inherited `cmd`.
    pub full_command: Option<Vec<String>>,
    /// Anchored regexes of host variables passed to `run` (stacker's proxy
    /// variables and TERM when empty).
    pub build_env_passthrough: Vec<String>,
    /// Variables set for `run` only.
    pub build_env: BTreeMap<String, String>,
    /// Variables set in the image config (sorted by name).
    pub environment: BTreeMap<String, String>,
    /// Config volumes.
    pub volumes: Vec<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Files under `/stacker/oci-labels/` that become labels after `run`.
    pub generate_labels: Vec<String>,
    /// Config working directory.
    pub working_dir: Option<String>,
    /// Built only for other images of this build; never tagged or printed.
    pub build_only: bool,
    /// Host paths bound into the `run` container.
    pub binds: Vec<Bind>,
    /// Config user (a name or number, always a string).
    pub runtime_user: Option<String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Config `os`, when the file sets it.
    pub os: Option<String>,
    /// Config `architecture`, when the file sets it.
    pub arch: Option<String>,
}

impl Image {
    /// The `run` script as it is executed: the lines joined, under
    /// `#!/bin/sh -xe` unless the first line is a `#!` line of its own.
    /// `None` when the image has nothing to run.
    pub fn script(&self) -> Option<String> {
        script_of(&self.run)
    }

    /// The `generate_labels` script, built as [`Image::script`] builds
    /// `run`'s; `None` when there is none.
    pub fn label_script(&self) -> Option<String> {
        script_of(&self.generate_labels)
    }

    /// Where imports without `dest` are visible during `run`:
    /// `/stacker/imports`, or for the legacy `import` both `/stacker` and
    /// `/.stacker/imports`, as stacker mounts them.
    pub fn imports_dirs(&self) -> &'static [&'static str] {
        if self.legacy_import {
            &["/stacker", "/.stacker/imports"]
        } else {
            &["/stacker/imports"]
        }
    }

    /// The other images of the build this one needs first: its `built` base
    /// and the images it imports from or takes a tar from (`stacker://`).
    pub fn dependencies(&self) -> Vec<&str> {
        let mut deps = Vec::new();
        match &self.from {
            Base::Built { tag } => deps.push(tag.as_str()),
            Base::Tar { url } => {
                if let Some((image, _)) = stacker_url(url) {
                    deps.push(image);
                }
            }
            _ => {}
        }
        for import in &self.imports {
            if let ImportSource::Stacker { image, .. } = import.source() {
                if !deps.contains(&image) {
                    deps.push(image);
                }
            }
        }
        deps
    }
}

/// A script from its lines: joined, under `#!/bin/sh -xe` unless the first
/// line is a `#!` line of its own; `None` when every line is blank.
fn script_of(lines: &[String]) -> Option<String> {
    if lines.iter().all(|l| l.trim().is_empty()) {
        return None;
    }
    let body = lines.join("\n");

    let mut script = if body.starts_with("#!") {
        body
    } else {
        format!("#!/bin/sh -xe\n{body}")
    };
    if !script.ends_with('\n') {
        script.push('\n');
    }
    Some(script)
}

/// What an image is built on (`from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// An empty root filesystem.
    Scratch,
    /// A tar file: a local path (absolute), an http(s) URL or
    /// `stacker://image/path`.
    Tar {
        /// Where the tar is.
        url: String,
    },
    /// An image in a local OCI layout (`url: path:tag`, split at the first colon).
    Oci {
        /// The layout directory.
        layout: String,
        /// The tag in it.
        tag: String,
    },
    /// An image from any transport (`docker://…`, `oci:path:tag`).
    Docker {
        /// The image reference, transport included.
        url: String,
        /// Allow plain HTTP and unverified TLS.
        insecure: bool,
    },
    /// Another image of this build.
    Built {
        /// Its name.
        tag: String,
    },
}

impl Base {
    /// stacker's name for the base's type.
    pub fn kind(&self) -> &'static str {
        match self {
            Base::Scratch => "scratch",
            Base::Tar { .. } => "tar",
            Base::Oci { .. } => "oci",
            Base::Docker { .. } => "docker",
            Base::Built { .. } => "built",
        }
    }
}

/// One entry of `imports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// A local path (absolute, a trailing `/` kept: it copies a directory's
    /// contents), an http(s) URL or `stacker://image/path`.
    pub path: String,
    /// The expected sha256 (lowercase hex), checked after fetching.
    pub hash: Option<String>,
    /// Where to copy it in the image; without it, the import is only
    /// visible during `run`.
    pub dest: Option<String>,
    /// Permission bits for the copied files.
    pub mode: Option<u32>,
    /// Owner for the copied files.
    pub uid: Option<u32>,
    /// Group for the copied files.
    pub gid: Option<u32>,
}

impl Import {
    /// The name an import has where it lands: the last component of its
    /// path (of a URL's path, of a `stacker://` path), without a trailing `/`.
    pub fn base_name(&self) -> &str {
        let trimmed = self.path.trim_end_matches('/');
        trimmed.rsplit('/').next().unwrap_or(trimmed)
    }

    /// Whether the path ends with `/`: a directory's contents are copied,
    /// not the directory itself.
    pub fn contents_only(&self) -> bool {
        self.path.ends_with('/')
    }

    /// Where the import lands, relative to `dir` (the image root for a
    /// `dest`, the imports directory without one), as stacker places it:
    /// with a `dest` ending in `/` (and a path that does not), inside it
    /// under its own name; with any other `dest`, at exactly `dest` (a
    /// file named so, a directory's contents merged there); without a
    /// `dest`, under its own name in the imports directory, or, for a path
    /// ending in `/`, its contents directly there.
    pub fn target(&self) -> String {
        match &self.dest {
            Some(dest) if dest.ends_with('/') && !self.contents_only() => {
                format!("{dest}{}", self.base_name())
            }
            Some(dest) => dest.clone(),
            None if self.contents_only() => "/".to_owned(),
            None => format!("/{}", self.base_name()),
        }
    }
}

/// Where an import comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportSource<'a> {
    /// A file or directory on the host.
    Local(&'a Path),
    /// An http or https URL.
    Http(&'a str),
    /// A path inside another image of this build.
    Stacker {
        /// The image's name.
        image: &'a str,
        /// The path inside it (absolute).
        path: &'a str,
    },
}

impl Import {
    /// Where the import comes from.
    pub fn source(&self) -> ImportSource<'_> {
        if let Some((image, path)) = stacker_url(&self.path) {
            ImportSource::Stacker { image, path }
        } else if is_http(&self.path) {
            ImportSource::Http(&self.path)
        } else {
            ImportSource::Local(Path::new(&self.path))
        }
    }

    /// Whether the import is fetched over the network (and so needs a
    /// hash under `--require-hash`).
    pub fn is_remote(&self) -> bool {
        matches!(self.source(), ImportSource::Http(_))
    }
}

/// One entry of `overlay_dirs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDir {
    /// The host directory (absolute).
    pub source: PathBuf,
    /// Where its contents go in the image (`/` when not given).
    pub dest: String,
}

/// One entry of `binds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The host path (absolute).
    pub source: PathBuf,
    /// The path in the `run` container.
    pub dest: String,
}

fn is_http(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Splits `stacker://image/path` into the image name and `/path`.
pub fn stacker_url(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("stacker://")?;
    let slash = rest.find('/').unwrap_or(rest.len());
    Some((&rest[..slash], &rest[slash..]))
}

/// Splits a command the way a POSIX shell splits words, honouring single
/// and double quotes and backslashes, without running anything.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err(format!("trailing backslash in {s:?}")),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Parses a file mode the way YAML 1.1 reads an integer: a leading `0`
/// means octal (`0777`), `0o` octal, `0x` hex, otherwise decimal.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let parsed = if let Some(oct) = s.strip_prefix("0o") {
        u32::from_str_radix(oct, 8)
    } else if let Some(hex) = s.strip_prefix("0x") {
        u32::from_str_radix(hex, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8)
    } else {
        s.parse()
    };
    match parsed {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        Ok(mode) => Err(format!("mode {s} ({mode:#o}) is larger than 07777")),
        Err(_) => Err(format!(
            "mode {s:?} is not a number (write it in octal, like 0644)"
        )),
    }
}

/// Parses a StackerFile from its (substituted) text. `path` is where the
/// file is, made absolute by the caller; relative paths in it resolve
/// against its directory.
pub fn parse(text: &str, path: &Path) -> Result<StackerFile, StackerError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    // Syntax first, so that a syntax error is reported as such rather than
    // as whatever the schema made of the events before it.
    serde_yaml::from_str::<IgnoredAny>(text).map_err(|err| StackerError::yaml(path, &err))?;
    let raw: RawFile = serde_yaml::from_str(text).map_err(|err| StackerError::yaml(path, &err))?;
    let mut file = StackerFile {
        path: path.to_owned(),
        prerequisites: raw
            .prerequisites
            .into_iter()
            .map(|p| super::substitute::absolute(dir, Path::new(&p)))
            .collect(),
        images: Vec::new(),
        warnings: Vec::new(),
    };
    for (name, raw) in raw.images {
        let invalid = |message: String| StackerError::Invalid {
            path: path.to_owned(),
            image: name.clone(),
            message,
        };
        if file.images.iter().any(|i| i.name == name) {
            return Err(invalid(
                "the name is used twice in this file (image names must be unique)".into(),
            ));
        }
        let image = raw
            .into_image(&name, dir, &mut file.warnings, path)
            .map_err(invalid)?;
        file.images.push(image);
    }
    Ok(file)
}

// ---- raw YAML forms -------------------------------------------------------

/// A scalar exactly as written (`0777`, `1000`, `yes` stay as text), which is
/// how stacker's YAML 1.1 parser hands scalars to string fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scalar(pub(crate) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A YAML 1.1 boolean: `true`/`false` and `yes`/`no`/`on`/`off`.
struct Bool11(bool);

impl<'de> Deserialize<'de> for Bool11 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bool11, D::Error> {
        let Scalar(s) = Scalar::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Ok(Bool11(true)),
            "false" | "no" | "n" | "off" | "" | "~" | "null" => Ok(Bool11(false)),
            _ => Err(de::Error::custom(format!(
                "{s:?} is not a boolean (write true or false)"
            ))),
        }
    }
}

/// A string or a list of strings (`run`, `generate_labels`, `volumes`).
struct StringList(Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StringList, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_owned()]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StringList, E> {
                Ok(StringList(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut out = Vec::new();
                while let Some(Scalar(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(StringList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `cmd`, `entrypoint`, `full_command`: a list of words, or a string split
/// like a shell would split it.
struct Command(Vec<String>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Command, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command string or a list of words")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Command, E> {
                split_command(v).map(Command).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Command, E> {
                Ok(Command(vec![v.to_string()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Command, E> {
                Ok(Command(vec![v.to_string()]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Command, E> {
                Ok(Command(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut out = Vec::new();
                while let Some(Scalar(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(Command(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One `imports` entry as written.
#[derive(Default)]
struct RawImport {
    path: Option<String>,
    hash: Option<String>,
    dest: Option<String>,
    mode: Option<String>,
    uid: Option<String>,
    gid: Option<String>,
    ignored: Vec<String>,
}

impl<'de> Deserialize<'de> for RawImport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawImport, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawImport;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a map with `path`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawImport, E> {
                Ok(RawImport {
                    path: Some(v.to_owned()),
                    ..RawImport::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawImport, A::Error> {
                let mut out = RawImport::default();
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "path" => &mut out.path,
                        "hash" => &mut out.hash,
                        "dest" => &mut out.dest,
                        "mode" => &mut out.mode,
                        "uid" => &mut out.uid,
                        "gid" => &mut out.gid,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            out.ignored.push(key);
                            continue;
                        }
                    };
                    *slot = map.next_value::<Option<Scalar>>()?.map(|s| s.0);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// `imports` / `import`: one string, or a list of strings and maps.
struct RawImports(Vec<RawImport>);

impl<'de> Deserialize<'de> for RawImports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawImports, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawImports;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a list of imports")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawImports, E> {
                Ok(RawImports(vec![RawImport {
                    path: Some(v.to_owned()),
                    ..RawImport::default()
                }]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawImports, E> {
                Ok(RawImports(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawImports, A::Error> {
                let mut out = Vec::new();
                while let Some(import) = seq.next_element()? {
                    out.push(import);
                }
                Ok(RawImports(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One `binds` entry: `/p`, `/src -> /dest` or `{source, dest}`.
struct RawBind {
    source: String,
    dest: Option<String>,
}

impl<'de> Deserialize<'de> for RawBind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawBind, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`/path`, `/source -> /dest` or a map with `source` and `dest`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawBind, E> {
                let words: Vec<&str> = v.split_whitespace().collect();
                match words.as_slice() {
                    [one] => Ok(RawBind {
                        source: (*one).to_owned(),
                        dest: None,
                    }),
                    [source, "->", dest] => Ok(RawBind {
                        source: (*source).to_owned(),
                        dest: Some((*dest).to_owned()),
                    }),
                    _ => Err(E::custom(format!(
                        "invalid bind {v:?} (write `/path` or `/source -> /dest`)"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBind, A::Error> {
                let mut source = None;
                let mut dest = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "source" => source = map.next_value::<Option<Scalar>>()?.map(|s| s.0),
                        "dest" => dest = map.next_value::<Option<Scalar>>()?.map(|s| s.0),
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown bind key `{other}` (expected `source` and `dest`)"
                            )))
                        }
                    }
                }
                match source {
                    Some(source) if !source.is_empty() => Ok(RawBind { source, dest }),
                    _ => Err(de::Error::custom("a bind needs a `source`")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `binds`: a list, or one string.
struct RawBinds(Vec<RawBind>);

impl<'de> Deserialize<'de> for RawBinds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawBinds, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBinds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of binds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawBinds, E> {
                RawBind::deserialize(de::value::StrDeserializer::<E>::new(v))
                    .map(|b| RawBinds(vec![b]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawBinds, E> {
                Ok(RawBinds(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBinds, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(RawBinds(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlayDir {
    source: Scalar,
    #[serde(default)]
    dest: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrom {
    #[serde(rename = "type")]
    kind: Option<Scalar>,
    url: Option<Scalar>,
    tag: Option<Scalar>,
    insecure: Option<Bool11>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    prerequisites: Option<StringList>,
}

/// Deserializes a field that may be present but null (`os:`), keeping that
/// apart from an absent one.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Scalar>>, D::Error> {
    Option::<Scalar>::deserialize(d).map(Some)
}

type Map = Option<MergeMap>;

/// A map of strings (`environment`, `labels`, …) in which YAML merge keys
/// (`<<: *anchor`, `<<: [*a, *b]`) are applied as stacker's YAML 1.1
/// parser applies them: the map's own keys win, then earlier merged maps.
struct MergeMap(BTreeMap<String, Option<Scalar>>);

impl<'de> Deserialize<'de> for MergeMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MergeMap, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MergeMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_unit<E: de::Error>(self) -> Result<MergeMap, E> {
                Ok(MergeMap(BTreeMap::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MergeMap, A::Error> {
                let mut own = BTreeMap::new();
                let mut merged = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "<<" {
                        merged.extend(map.next_value::<OneOrMany<MergeMap>>()?.0);
                    } else {
                        own.insert(key, map.next_value::<Option<Scalar>>()?);
                    }
                }
                for MergeMap(base) in merged {
                    for (k, v) in base {
                        own.entry(k).or_insert(v);
                    }
                }
                Ok(MergeMap(own))
            }
        }
        d.deserialize_any(V)
    }
}

/// One map or a list of maps: the value of a `<<` merge key.
struct OneOrMany<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OneOrMany<T>, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map or a list of maps to merge")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OneOrMany<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| OneOrMany(vec![t]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element()? {
                    out.push(t);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    from: Option<RawFrom>,
    imports: Option<RawImports>,
    import: Option<RawImports>,
    overlay_dirs: Option<Vec<RawOverlayDir>>,
    run: Option<StringList>,
    cmd: Option<Command>,
    entrypoint: Option<Command>,
    full_command: Option<Command>,
    build_env_passthrough: Option<StringList>,
    build_env: Map,
    environment: Map,
    volumes: Option<StringList>,
    labels: Map,
    generate_labels: Option<StringList>,
    working_dir: Option<Scalar>,
    build_only: Option<Bool11>,
    binds: Option<RawBinds>,
    runtime_user: Option<Scalar>,
    annotations: Map,
    #[serde(default, deserialize_with = "present")]
    os: Option<Option<Scalar>>,
    #[serde(default, deserialize_with = "present")]
    arch: Option<Option<Scalar>>,
    bom: Option<IgnoredAny>,
    /// YAML merge keys: another image's directives, under this one's.
    #[serde(rename = "<<")]
    merge: Option<OneOrMany<RawImage>>,
}

impl RawImage {
    /// This image with its `<<` merges applied: its own directives win,
    /// then the earlier merged ones (each replaced whole, as YAML merges).
    fn merged(mut self) -> RawImage {
        let bases = self.merge.take().map(|m| m.0).unwrap_or_default();
        for base in bases {
            let b = base.merged();
            self = RawImage {
                from: self.from.or(b.from),
                imports: self.imports.or(b.imports),
                import: self.import.or(b.import),
                overlay_dirs: self.overlay_dirs.or(b.overlay_dirs),
                run: self.run.or(b.run),
                cmd: self.cmd.or(b.cmd),
                entrypoint: self.entrypoint.or(b.entrypoint),
                full_command: self.full_command.or(b.full_command),
                build_env_passthrough: self.build_env_passthrough.or(b.build_env_passthrough),
                build_env: self.build_env.or(b.build_env),
                environment: self.environment.or(b.environment),
                volumes: self.volumes.or(b.volumes),
                labels: self.labels.or(b.labels),
                generate_labels: self.generate_labels.or(b.generate_labels),
                working_dir: self.working_dir.or(b.working_dir),
                build_only: self.build_only.or(b.build_only),
                binds: self.binds.or(b.binds),
                runtime_user: self.runtime_user.or(b.runtime_user),
                annotations: self.annotations.or(b.annotations),
                os: self.os.or(b.os),
                arch: self.arch.or(b.arch),
                bom: self.bom.or(b.bom),
                merge: None,
            };
        }
        self
    }
}

/// The top level: image names (in file order) and `config`.
struct RawFile {
    prerequisites: Vec<String>,
    images: Vec<(String, RawImage)>,
}

impl<'de> Deserialize<'de> for RawFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawFile, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of image names to their definitions")
            }
            fn visit_none<E: de::Error>(self) -> Result<RawFile, E> {
                self.visit_unit()
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawFile, E> {
                Ok(RawFile {
                    prerequisites: Vec::new(),
                    images: Vec::new(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFile, A::Error> {
                let mut file = self.visit_unit::<A::Error>()?;
                while let Some(Scalar(key)) = map.next_key()? {
                    if key == "config" {
                        let config: Option<RawConfig> = map.next_value()?;
                        if let Some(list) = config.and_then(|c| c.prerequisites) {
                            file.prerequisites.extend(list.0);
                        }
                    } else {
                        let image: RawImage = map.next_value()?;
                        file.images.push((key, image.merged()));
                    }
                }
                Ok(file)
            }
        }
        d.deserialize_any(V)
    }
}

fn map(m: Map) -> BTreeMap<String, String> {
    m.map(|m| m.0)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.map(|s| s.0).unwrap_or_default()))
        .collect()
}

fn resolve(dir: &Path, p: &str) -> String {
    if p.contains("://") {
        return p.to_owned();
    }
    let abs = super::substitute::absolute(dir, Path::new(p))
        .display()
        .to_string();
    if p.ends_with('/') && !abs.ends_with('/') {
        format!("{abs}/")
    } else {
        abs
    }
}

fn number(what: &str, s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("import {what} {s:?} is not a non-negative number"))
}

impl RawImage {
    fn into_image(
        self,
        name: &str,
        dir: &Path,
        warnings: &mut Vec<String>,
        path: &Path,
    ) -> Result<Image, String> {
        let file = path.display();
        let from = self.from.ok_or_else(|| {
            "`from` is missing (every image needs a base: scratch, tar, oci, docker or built)"
                .to_owned()
        })?;
        let kind = from.kind.map(|s| s.0).unwrap_or_default();
        let url = from.url.map(|s| s.0).filter(|s| !s.is_empty());
        let need_url = |what: &str| {
            url.clone()
                .ok_or_else(|| format!("`from: {{type: {kind}}}` needs a `url` ({what})"))
        };
        let base = match kind.as_str() {
            "scratch" => Base::Scratch,
            "tar" => Base::Tar {
                url: resolve(
                    dir,
                    &need_url("a tar file, http(s) URL or stacker://image/path")?,
                ),
            },
            "oci" => {
                let url = need_url("layout:tag")?;
                let Some((layout, tag)) = url.split_once(':') else {
                    return Err(format!(
                        "`from.url: {url}` names no tag (an oci base is `layout:tag`)"
                    ));
                };
                Base::Oci {
                    layout: layout.to_owned(),
                    tag: tag.to_owned(),
                }
            }
            "docker" => Base::Docker {
                url: need_url("an image reference such as docker://alpine:3.19")?,
                insecure: from.insecure.is_some_and(|b| b.0),
            },
            "built" => Base::Built {
                tag: from.tag.map(|s| s.0).filter(|s| !s.is_empty()).ok_or(
                    "`from: {type: built}` needs a `tag` naming another image of this build",
                )?,
            },
            "" => return Err("`from` has no `type` (scratch, tar, oci, docker or built)".into()),
            other => {
                return Err(format!(
                    "unknown `from.type: {other}` (expected scratch, tar, oci, docker or built)"
                ))
            }
        };
        let imports = self.imports.map(|i| i.0).unwrap_or_default();
        let legacy = self.import.map(|i| i.0).unwrap_or_default();
        if !imports.is_empty() && !legacy.is_empty() {
            return Err(
                "has both `import` and `imports` (use only `imports`; legacy `import` files appear at /stacker)"
                    .into(),
            );
        }
        let legacy_import = !legacy.is_empty();
        if legacy_import {
            warnings.push(format!(
                "{file}: image {name}: `import` is deprecated; change it to `imports` and /stacker to /stacker/imports"
            ));
        }
        let mut out_imports = Vec::new();
        for raw in if legacy_import { legacy } else { imports } {
            let path = raw
                .path
                .filter(|p| !p.is_empty())
                .ok_or("an import has no `path`")?;
            for key in &raw.ignored {
                warnings.push(format!(
                    "{file}: image {name}: import {path}: unknown key `{key}` ignored (known: path, hash, dest, mode, uid, gid)"
                ));
            }
            if let Some(dest) = &raw.dest {
                if !dest.starts_with('/') {
                    return Err(format!(
                        "import {path}: `dest: {dest}` must be an absolute path"
                    ));
                }
            }
            let hash = match raw.hash.filter(|h| !h.is_empty()) {
                None => None,
                Some(h) => {
                    let hex = h.strip_prefix("sha256:").unwrap_or(&h).to_ascii_lowercase();
                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(format!(
                            "import {path}: `hash: {h}` is not a sha256 (64 hex digits)"
                        ));
                    }
                    Some(hex)
                }
            };
            out_imports.push(Import {
                path: resolve(dir, &path),
                hash,
                dest: raw.dest.filter(|d| !d.is_empty()),
                mode: raw
                    .mode
                    .map(|m| parse_mode(&m))
                    .transpose()
                    .map_err(|e| format!("import {path}: {e}"))?,
                uid: raw.uid.map(|u| number("uid", &u)).transpose()?,
                gid: raw.gid.map(|g| number("gid", &g)).transpose()?,
            });
        }
        let empty_field =
            |what: &str| format!("`{what}` is empty (leave it out to use the host's)");
        let os = match self.os {
            Some(None) => return Err(empty_field("os")),
            Some(Some(s)) if s.0.is_empty() => return Err(empty_field("os")),
            Some(Some(s)) => Some(s.0),
            None => None,
        };
        let arch = match self.arch {
            Some(None) => return Err(empty_field("arch")),
            Some(Some(s)) if s.0.is_empty() => return Err(empty_field("arch")),
            Some(Some(s)) => Some(s.0),
            None => None,
        };
        if self.bom.is_some() {
            warnings.push(format!(
                "{file}: image {name}: `bom` is deprecated and ignored"
            ));
        }
        let passthrough = self.build_env_passthrough.map(|l| l.0).unwrap_or_default();
        for re in &passthrough {
            regex_ok(re).map_err(|e| format!("build_env_passthrough {re:?}: {e}"))?;
        }
        Ok(Image {
            name: name.to_owned(),
            from: base,
            imports: out_imports,
            legacy_import,
            overlay_dirs: self
                .overlay_dirs
                .unwrap_or_default()
                .into_iter()
                .map(|o| OverlayDir {
                    source: PathBuf::from(resolve(dir, &o.source.0)),
                    dest: o.dest.map(|d| d.0).unwrap_or_else(|| "/".to_owned()),
                })
                .collect(),
            run: self.run.map(|r| r.0).unwrap_or_default(),
            cmd: self.cmd.map(|c| c.0),
            entrypoint: self.entrypoint.map(|c| c.0),
            full_command: self.full_command.map(|c| c.0),
            build_env_passthrough: passthrough,
            build_env: map(self.build_env),
            environment: map(self.environment),
            volumes: self.volumes.map(|v| v.0).unwrap_or_default(),
            labels: map(self.labels),
            generate_labels: self.generate_labels.map(|v| v.0).unwrap_or_default(),
            working_dir: self.working_dir.map(|s| s.0).filter(|s| !s.is_empty()),
            build_only: self.build_only.is_some_and(|b| b.0),
            binds: self
                .binds
                .map(|b| b.0)
                .unwrap_or_default()
                .into_iter()
                .map(|b| {
                    let dest = b.dest.unwrap_or_else(|| b.source.clone());
                    Bind {
                        source: PathBuf::from(resolve(dir, &b.source)),
                        dest: resolve(dir, &dest),
                    }
                })
                .collect(),
            runtime_user: self.runtime_user.map(|s| s.0).filter(|s| !s.is_empty()),
            annotations: map(self.annotations),
            os,
            arch,
        })
    }
}

/// Checks that `re` compiles as an anchored regular expression, the form
/// `build_env_passthrough` entries are matched in.
fn regex_ok(re: &str) -> Result<(), String> {
    regex::Regex::new(&format!("^(?:{re})$"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> StackerFile {
        parse(text, Path::new("/proj/stacker.yaml")).unwrap_or_else(|e| panic!("{text}\n{e}"))
    }

    fn one(text: &str) -> Image {
        let mut file = parse_ok(text);
        assert_eq!(file.images.len(), 1, "{text}");
        file.images.remove(0)
    }

    fn parse_err(text: &str) -> String {
        match parse(text, Path::new("/proj/stacker.yaml")) {
            Ok(file) => panic!("{text} parsed: {file:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bases() {
        let cases = [
            ("from: {type: scratch}", Base::Scratch),
            (
                "from: {type: tar, url: rootfs.tar}",
                Base::Tar {
                    url: "/proj/rootfs.tar".into(),
                },
            ),
            (
                "from: {type: tar, url: 'https://example.com/r.tar.gz'}",
                Base::Tar {
                    url: "https://example.com/r.tar.gz".into(),
                },
            ),
            (
                "from: {type: tar, url: 'stacker://build/out.tar'}",
                Base::Tar {
                    url: "stacker://build/out.tar".into(),
                },
            ),
            (
                "from: {type: oci, url: 'dest:busybox:0.1.1'}",
                Base::Oci {
                    layout: "dest".into(),
                    tag: "busybox:0.1.1".into(),
                },
            ),
            (
                "from: {type: docker, url: 'docker://alpine:3.19'}",
                Base::Docker {
                    url: "docker://alpine:3.19".into(),
                    insecure: false,
                },
            ),
            (
                "from: {type: docker, url: 'oci:/o:base', insecure: true}",
                Base::Docker {
                    url: "oci:/o:base".into(),
                    insecure: true,
                },
            ),
            (
                "from: {type: built, tag: base}",
                Base::Built { tag: "base".into() },
            ),
        ];
        for (from, want) in cases {
            let image = one(&format!("img:\n  {from}\n"));
            assert_eq!(image.from, want, "{from}");
        }
    }

    #[test]
    fn imports_in_every_form() {
        let hash = "A".repeat(64);
        let text = format!(
            "img:
  from: {{type: scratch}}
  imports:
    - one.txt
    - dir/
    - https://example.com/f.tgz
    - stacker://build/usr/bin/tool
    - path: conf
      dest: /etc/conf
      mode: 0644
      uid: 1000
      gid: '10'
      hash: sha256:{hash}
      sha: ignored
    - path: /abs/x
      mode: 0o755
    - path: y
      mode: 493
"
        );
        let file = parse_ok(&text);
        let image = &file.images[0];
        let paths: Vec<&str> = image.imports.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/proj/one.txt",
                "/proj/dir/",
                "https://example.com/f.tgz",
                "stacker://build/usr/bin/tool",
                "/proj/conf",
                "/abs/x",
                "/proj/y"
            ]
        );
        let conf = &image.imports[4];
        assert_eq!(conf.dest.as_deref(), Some("/etc/conf"));
        assert_eq!(conf.mode, Some(0o644));
        assert_eq!(conf.uid, Some(1000));
        assert_eq!(conf.gid, Some(10));
        assert_eq!(conf.hash.as_deref(), Some("a".repeat(64).as_str()));
        assert_eq!(image.imports[5].mode, Some(0o755));
        assert_eq!(image.imports[6].mode, Some(0o755));
        assert!(image.imports[2].is_remote());
        assert_eq!(
            image.imports[3].source(),
            ImportSource::Stacker {
                image: "build",
                path: "/usr/bin/tool"
            }
        );
        assert_eq!(image.dependencies(), ["build"]);
        assert_eq!(image.imports_dirs(), ["/stacker/imports"]);
        assert_eq!(file.warnings.len(), 1);
        assert!(
            file.warnings[0].contains("unknown key `sha` ignored"),
            "{:?}",
            file.warnings
        );

        let single = one("img:\n  from: {type: scratch}\n  imports: a.txt\n");
        assert_eq!(single.imports[0].path, "/proj/a.txt");
    }

    /// Where an import lands, as stacker's import tests place it (a
    /// trailing `/` on the path copies contents; on `dest`, puts the import
    /// inside under its own name; otherwise `dest` is the exact target).
    #[test]
    fn import_targets() {
        let cases = [
            ("folder1", Some("/folder2"), "/folder2"),
            ("folder1/", Some("/folder2"), "/folder2"),
            ("folder1", Some("/folder2/"), "/folder2/folder1"),
            ("folder1/", Some("/folder2/"), "/folder2/"),
            ("test_file", Some("/usr/bin"), "/usr/bin"),
            ("test_file", Some("/files/"), "/files/test_file"),
            ("folder1/", Some("/"), "/"),
            ("stacker://fourth/folder4/", Some("/folder7/"), "/folder7/"),
            ("stacker://fifth/file2", None, "/file2"),
            ("https://example.com/dl/f.tgz", None, "/f.tgz"),
            ("https://example.com/dl/f.tgz", Some("/opt/"), "/opt/f.tgz"),
            ("files/", None, "/"),
            ("files", None, "/files"),
        ];
        for (path, dest, want) in cases {
            let import = Import {
                path: resolve(Path::new("/proj"), path),
                hash: None,
                dest: dest.map(str::to_owned),
                mode: None,
                uid: None,
                gid: None,
            };
            assert_eq!(import.target(), want, "{path} -> {dest:?}");
        }
    }

    #[test]
    fn legacy_import() {
        let text = "img:\n  from: {type: scratch}\n  import:\n    - a\n";
        let file = parse_ok(text);
        let image = &file.images[0];
        assert!(image.legacy_import);
        assert_eq!(image.imports_dirs(), ["/stacker", "/.stacker/imports"]);
        assert!(file.warnings[0].contains("`import` is deprecated"));
        let err = parse_err("img:\n  from: {type: scratch}\n  import: [a]\n  imports: [b]\n");
        assert!(
            err.contains("image img: has both `import` and `imports`"),
            "{err}"
        );
        // Both present but one empty is fine, as in stacker.
        let ok = one("img:\n  from: {type: scratch}\n  import: []\n  imports: [b]\n");
        assert!(!ok.legacy_import);
    }

    #[test]
    fn run_forms() {
        let cases = [
            ("run: echo hi", "#!/bin/sh -xe\necho hi\n"),
            (
                "run: |\n    echo a\n    echo b\n",
                "#!/bin/sh -xe\necho a\necho b\n",
            ),
            (
                "run:\n    - echo a\n    - echo b\n",
                "#!/bin/sh -xe\necho a\necho b\n",
            ),
            (
                "run: |\n    #!/bin/bash -e\n    echo $HOME\n",
                "#!/bin/bash -e\necho $HOME\n",
            ),
        ];
        for (run, want) in cases {
            let image = one(&format!("img:\n  from: {{type: scratch}}\n  {run}\n"));
            assert_eq!(image.script().as_deref(), Some(want), "{run}");
        }
        assert_eq!(one("img:\n  from: {type: scratch}\n").script(), None);
    }

    #[test]
    fn commands_split_like_a_shell() {
        let cases: [(&str, &[&str]); 6] = [
            (
                "cmd: /bin/sh -c 'echo hi there'",
                &["/bin/sh", "-c", "echo hi there"],
            ),
            ("cmd: [a, 'b c']", &["a", "b c"]),
            (r#"cmd: "echo \"q\" x\\ y""#, &["echo", "q", "x y"]),
            ("entrypoint: /usr/bin/zot serve /etc/zot/config.json", &[]),
            ("full_command: [/init]", &[]),
            ("cmd: ''", &[]),
        ];
        for (line, want) in cases {
            let image = one(&format!("img:\n  from: {{type: scratch}}\n  {line}\n"));
            if line.starts_with("cmd") {
                assert_eq!(
                    image.cmd.as_deref(),
                    Some(
                        want.iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .as_slice()
                    ),
                    "{line}"
                );
            }
        }
        let image = one("img:\n  from: {type: scratch}\n  entrypoint: /usr/bin/zot serve /etc/zot/config.json\n  full_command: \"/init --x\"\n");
        assert_eq!(
            image.entrypoint.as_deref(),
            Some(
                &[
                    "/usr/bin/zot".to_string(),
                    "serve".into(),
                    "/etc/zot/config.json".into()
                ][..]
            )
        );
        assert_eq!(
            image.full_command.as_deref(),
            Some(&["/init".to_string(), "--x".into()][..])
        );
        let word_cases: [(&str, Result<&[&str], &str>); 6] = [
            ("a  b\tc", Ok(&["a", "b", "c"])),
            ("'a'\"b\"c", Ok(&["abc"])),
            ("\"$HOME\" '$x'", Ok(&["$HOME", "$x"])),
            ("a\\ b", Ok(&["a b"])),
            ("'open", Err("unterminated single quote")),
            ("\"open", Err("unterminated double quote")),
        ];
        for (s, want) in word_cases {
            match (split_command(s), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{s}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{s}: {got}"),
                (got, want) => panic!("{s}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn binds_in_every_form() {
        let image = one("img:
  from: {type: scratch}
  binds:
    - /dev/kvm
    - /src -> /dest
    - ../rel -> /mnt
    - source: data
      dest: /data
    - source: /only
");
        let got: Vec<(String, String)> = image
            .binds
            .iter()
            .map(|b| (b.source.display().to_string(), b.dest.clone()))
            .collect();
        let want = [
            ("/dev/kvm", "/dev/kvm"),
            ("/src", "/dest"),
            ("/proj/../rel", "/mnt"),
            ("/proj/data", "/data"),
            ("/only", "/only"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
        let err = parse_err("img:\n  from: {type: scratch}\n  binds: ['/a => /b']\n");
        assert!(err.contains("invalid bind \"/a => /b\""), "{err}");
    }

    #[test]
    fn yaml_1_1_scalars() {
        let image = one("img:
  from: {type: scratch}
  runtime_user: 1000
  build_only: yes
  environment:
    PORT: 8080
    DEBUG: true
    EMPTY:
    MODE: 0755
  labels: {b: 2, a: x}
  annotations: {org.opencontainers.image.version: 1.0}
  working_dir: /app
  volumes: /data
  generate_labels: /stacker/gen
  os: linux
  arch: arm64
  build_env: {A: 1}
  build_env_passthrough: ['HTTP_.*', TERM]
");
        assert_eq!(image.runtime_user.as_deref(), Some("1000"));
        assert!(image.build_only);
        let env: Vec<(&str, &str)> = image
            .environment
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("DEBUG", "true"),
                ("EMPTY", ""),
                ("MODE", "0755"),
                ("PORT", "8080")
            ]
        );
        assert_eq!(image.labels.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(image.annotations["org.opencontainers.image.version"], "1.0");
        assert_eq!(image.volumes, ["/data"]);
        assert_eq!(image.generate_labels, ["/stacker/gen"]);
        assert_eq!(image.os.as_deref(), Some("linux"));
        assert_eq!(image.arch.as_deref(), Some("arm64"));
        assert_eq!(image.build_env["A"], "1");
        assert_eq!(image.build_env_passthrough, ["HTTP_.*", "TERM"]);
        let modes = [
            ("0777", Ok(0o777)),
            ("0o644", Ok(0o644)),
            ("420", Ok(420)),
            ("0x1ff", Ok(0o777)),
            ("08", Err("not a number")),
            ("017777", Err("larger than 07777")),
        ];
        for (s, want) in modes {
            match (parse_mode(s), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{s}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{s}: {got}"),
                (got, want) => panic!("{s}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn config_and_order() {
        let file = parse_ok(
            "config:
  prerequisites:
    - ../base/stacker.yaml
    - /abs/other.yaml
zeta:
  from: {type: scratch}
alpha:
  from: {type: built, tag: zeta}
",
        );
        assert_eq!(
            file.prerequisites,
            [
                PathBuf::from("/proj/../base/stacker.yaml"),
                PathBuf::from("/abs/other.yaml")
            ]
        );
        let names: Vec<&str> = file.images.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
        let only_config = parse_ok("config:\n  prerequisites: [a.yaml]\n");
        assert!(only_config.images.is_empty());
        assert!(parse_ok("# nothing here\n").images.is_empty());
        let bom = parse_ok("img:\n  from: {type: scratch}\n  bom: {generate: true}\n");
        assert!(
            bom.warnings[0].contains("`bom` is deprecated"),
            "{:?}",
            bom.warnings
        );
    }

    /// YAML merge keys, which stacker's parser applies: an image that
    /// takes another's directives and overrides some.
    #[test]
    fn merge_keys() {
        let file = parse_ok(
            "base: &base
  from: {type: docker, url: 'docker://alpine:3.19'}
  build_only: true
  environment: &env {A: 1, GO_VERSION: 1.20}
app:
  <<: *base
  build_only: false
  environment:
    <<: *env
    B: two
  run: echo hi
",
        );
        let app = &file.images[1];
        assert!(file.images[0].build_only);
        assert!(!app.build_only);
        assert_eq!(
            app.from,
            Base::Docker {
                url: "docker://alpine:3.19".into(),
                insecure: false
            }
        );
        assert_eq!(app.environment["A"], "1");
        let merged = parse_ok(
            "x: &x
  from: {type: scratch}
  imports: [{path: a, dest: /a, mode: 0755}]
y:
  <<: *x
",
        );
        assert_eq!(merged.images[1].imports[0].mode, Some(0o755));
        assert_eq!(app.environment["B"], "two");
        assert_eq!(app.environment["GO_VERSION"], "1.20", "text kept");
        let err = parse_err(
            "base: &b
  from: {type: scratch}
app:
  <<: *b
  frm: x
",
        );
        assert!(
            err.starts_with("/proj/stacker.yaml:5:3: app: unknown directive `frm`"),
            "{err}"
        );
        // A list of merges: the earlier one wins, the image's own keys first.
        let many = parse_ok(
            "a: &a
  from: {type: scratch}
  labels: &la {x: a, y: a}
  working_dir: /a
b: &b
  from: {type: built, tag: a}
  working_dir: /b
  cmd: [b]
c:
  <<: [*b, *a]
  labels:
    <<: [{x: first}, *la]
    z: own
",
        );
        let c = &many.images[2];
        assert_eq!(c.from, Base::Built { tag: "a".into() });
        assert_eq!(c.working_dir.as_deref(), Some("/b"));
        assert_eq!(c.cmd.as_deref(), Some(&["b".to_string()][..]));
        let labels: Vec<(&str, &str)> = c
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(labels, [("x", "first"), ("y", "a"), ("z", "own")]);
    }

    #[test]
    fn bad_input() {
        let cases = [
            (
                "img:\n  from: {type: scratch}\n  frm: x\n",
                "/proj/stacker.yaml:3:3: img: unknown directive `frm` (expected one of",
            ),
            (
                "img:\n  from:\n    type: scratch\n    urll: x\n",
                "stacker.yaml:4:5: img.from: unknown directive `urll`",
            ),
            (
                "config:\n  prereqs: []\n",
                "stacker.yaml:2:3: config: unknown directive `prereqs`",
            ),
            ("img:\n  from: {type: scratch\n", "stacker.yaml:3:1:"),
            ("img: [\n", "stacker.yaml:2:1:"),
            (
                "img: [a]\n",
                "stacker.yaml:1:6: img: invalid type: sequence (expected a map of directives)",
            ),
            (
                "a: b: c\n",
                "stacker.yaml:1:5: mapping values are not allowed",
            ),
            ("img:\n  run: x\n", "image img: `from` is missing"),
            ("img:\n  from: {type: lxc}\n", "unknown `from.type: lxc`"),
            ("img:\n  from: {url: x}\n", "`from` has no `type`"),
            ("img:\n  from: {type: built}\n", "needs a `tag`"),
            (
                "img:\n  from: {type: docker}\n",
                "`from: {type: docker}` needs a `url`",
            ),
            (
                "img:\n  from: {type: oci, url: nolayouttag}\n",
                "names no tag",
            ),
            ("img:\n  from: {type: scratch}\n  os:\n", "`os` is empty"),
            (
                "img:\n  from: {type: scratch}\n  arch: ''\n",
                "`arch` is empty",
            ),
            (
                "img:\n  from: {type: scratch}\n  build_only: maybe\n",
                "\"maybe\" is not a boolean",
            ),
            (
                "img:\n  from: {type: scratch}\n  imports:\n    - dest: /x\n",
                "an import has no `path`",
            ),
            (
                "img:\n  from: {type: scratch}\n  imports:\n    - {path: a, dest: rel}\n",
                "`dest: rel` must be an absolute path",
            ),
            (
                "img:\n  from: {type: scratch}\n  imports:\n    - {path: a, hash: abc}\n",
                "is not a sha256",
            ),
            (
                "img:\n  from: {type: scratch}\n  imports:\n    - {path: a, uid: -1}\n",
                "uid \"-1\" is not a non-negative number",
            ),
            (
                "img:\n  from: {type: scratch}\n  imports:\n    - {path: a, mode: rwx}\n",
                "mode \"rwx\" is not a number",
            ),
            (
                "img:\n  from: {type: scratch}\n  cmd: \"echo 'x\"\n",
                "unterminated single quote",
            ),
            (
                "img:\n  from: {type: scratch}\n  build_env_passthrough: ['(']\n",
                "build_env_passthrough \"(\"",
            ),
            (
                "img:\n  from: {type: scratch}\nimg:\n  from: {type: scratch}\n",
                "the name is used twice",
            ),
            (
                "img:\n  from: {type: scratch}\n  binds:\n    - {src: /a}\n",
                "unknown bind key `src`",
            ),
        ];
        for (text, want) in cases {
            let err = parse_err(text);
            assert!(err.contains(want), "{text}\n got: {err}\nwant: {want}");
        }
    }
}

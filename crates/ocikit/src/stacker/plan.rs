//! The build plan: a stacker.yaml with its prerequisites, substituted,
//! parsed and put in dependency order.
//!
//! Prerequisite files (`config.prerequisites`, relative to the file that
//! lists them, chaining as deep as they go) are built first. Within the
//! build, an image comes after the images it needs: its `built` base and any
//! image it imports from or takes a tar from with `stacker://`. Otherwise the
//! order is the files' own, so a plan is the same on every run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::file::{self, Base, Image, StackerFile};
use super::{StackerError, Substitutions};

/// A build, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every image, in the order to build it.
    pub steps: Vec<Step>,
    /// Warnings for people, from substitution and parsing.
    pub warnings: Vec<String>,
}

/// One image of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    /// The file that defines it.
    pub file: PathBuf,
    /// The image.
    pub image: Image,
}

impl Step {
    /// The plan line `oci-build --dry-run` prints: name, file, base,
    /// imports and build_only.
    pub fn summary(&self) -> serde_json::Value {
        let image = &self.image;
        let base = match &image.from {
            Base::Scratch => json!({"type": "scratch"}),
            Base::Tar { url } => json!({"type": "tar", "url": url}),
            Base::Oci { layout, tag } => json!({"type": "oci", "url": format!("{layout}:{tag}")}),
            Base::Docker { url, insecure } => {
                json!({"type": "docker", "url": url, "insecure": insecure})
            }
            Base::Built { tag } => json!({"type": "built", "tag": tag}),
        };
        let imports: Vec<serde_json::Value> = image
            .imports
            .iter()
            .map(|i| {
                let mut v = json!({"path": i.path});
                if let Some(dest) = &i.dest {
                    v["dest"] = json!(dest);
                }
                if let Some(hash) = &i.hash {
                    v["hash"] = json!(hash);
                }
                v
            })
            .collect();
        json!({
            "name": image.name,
            "file": self.file.display().to_string(),
            "base": base,
            "imports": imports,
            "build_only": image.build_only,
        })
    }
}

/// Reads `path` and its prerequisites, substitutes them with `subs`,
/// parses them and orders their images. `require_hash` makes a `hash`
/// mandatory on every http(s) import, as stacker's `--require-hash` does.
pub fn load(path: &Path, subs: &Substitutions, require_hash: bool) -> Result<Plan, StackerError> {
    let path = std::path::absolute(path).map_err(|source| StackerError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    let mut chain = Vec::new();
    load_file(&path, subs, &mut chain, &mut files, &mut warnings)?;
    for file in &files {
        warnings.extend(file.warnings.iter().cloned());
        for image in &file.images {
            for import in &image.imports {
                if let (Some(_), file::ImportSource::Local(local)) = (&import.hash, import.source())
                {
                    if local.is_dir() {
                        warnings.push(format!(
                            "{}: image {}: import {}: a `hash` names a file's bytes; on a directory it is ignored (as stacker ignores it)",
                            file.path.display(),
                            image.name,
                            import.path
                        ));
                    }
                }
            }
        }
        if require_hash {
            for image in &file.images {
                if let Some(import) = image
                    .imports
                    .iter()
                    .find(|i| i.is_remote() && i.hash.is_none())
                {
                    return Err(StackerError::Invalid {
                        path: file.path.clone(),
                        image: image.name.clone(),
                        message: format!(
                            "remote import {} has no `hash` (--require-hash makes it mandatory)",
                            import.path
                        ),
                    });
                }
            }
        }
    }
    let steps = order(files)?;
    Ok(Plan { steps, warnings })
}

/// Loads `path` after its prerequisites (depth first), each file once.
fn load_file(
    path: &Path,
    subs: &Substitutions,
    chain: &mut Vec<PathBuf>,
    files: &mut Vec<StackerFile>,
    warnings: &mut Vec<String>,
) -> Result<(), StackerError> {
    // The same file reached through two relative paths is one file.
    let canonical = std::fs::canonicalize(path).map_err(|source| StackerError::Read {
        path: path.to_owned(),
        source,
    })?;
    let path = canonical.as_path();
    if let Some(at) = chain.iter().position(|p| p == path) {
        let mut cycle = chain[at..].to_vec();
        cycle.push(path.to_owned());
        return Err(StackerError::PrerequisiteCycle { chain: cycle });
    }
    if files.iter().any(|f| f.path == path) {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|source| StackerError::Read {
        path: path.to_owned(),
        source,
    })?;
    let (text, more) = subs.apply(&text, path)?;
    warnings.extend(more);
    let parsed = file::parse(&text, path)?;
    chain.push(path.to_owned());
    for prerequisite in &parsed.prerequisites {
        load_file(prerequisite, subs, chain, files, warnings)?;
    }
    chain.pop();
    files.push(parsed);
    Ok(())
}

/// Orders the images of `files` (prerequisites first) so that each comes
/// after what it needs, keeping file order otherwise.
fn order(files: Vec<StackerFile>) -> Result<Vec<Step>, StackerError> {
    let mut pending: Vec<Step> = Vec::new();
    let mut defined: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        for image in file.images {
            if let Some(first) = defined.get(&image.name) {
                return Err(StackerError::DuplicateImage {
                    name: image.name,
                    first: first.clone(),
                    second: file.path,
                });
            }
            defined.insert(image.name.clone(), file.path.clone());
            pending.push(Step {
                file: file.path.clone(),
                image,
            });
        }
    }
    for step in &pending {
        for dep in step.image.dependencies() {
            if !defined.contains_key(dep) {
                return Err(StackerError::UnknownDependency {
                    path: step.file.clone(),
                    image: step.image.name.clone(),
                    dependency: dep.to_owned(),
                });
            }
        }
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut steps = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|s| s.image.dependencies().iter().all(|d| done.contains(*d)));
        match ready {
            Some(at) => {
                let step = pending.remove(at);
                done.insert(step.image.name.clone());
                steps.push(step);
            }
            None => {
                return Err(StackerError::Cycle {
                    cycle: find_cycle(&pending, &done),
                })
            }
        }
    }
    Ok(steps)
}

/// A cycle among `pending` images (none of which can be built), found by
/// following unbuilt dependencies from the first until a name repeats.
fn find_cycle(pending: &[Step], done: &BTreeSet<String>) -> Vec<String> {
    let by_name: BTreeMap<&str, &Image> = pending
        .iter()
        .map(|s| (s.image.name.as_str(), &s.image))
        .collect();
    let mut path: Vec<String> = Vec::new();
    let mut current = pending[0].image.name.as_str();
    loop {
        if let Some(at) = path.iter().position(|n| n == current) {
            let mut cycle = path[at..].to_vec();
            cycle.push(current.to_owned());
            return cycle;
        }
        path.push(current.to_owned());
        let next = by_name
            .get(current)
            .and_then(|i| i.dependencies().into_iter().find(|d| !done.contains(*d)));
        match next {
            Some(next) => current = next,
            None => return path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.steps.iter().map(|s| s.image.name.as_str()).collect()
    }

    #[test]
    fn orders_by_dependencies_and_keeps_file_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = write(
            dir.path(),
            "stacker.yaml",
            "app:
  from: {type: built, tag: base}
  imports: [stacker://tools/usr/bin/tool]
base:
  from: {type: scratch}
tools:
  from: {type: tar, url: stacker://base/rootfs.tar}
  build_only: true
other:
  from: {type: scratch}
",
        );
        let plan = load(&path, &Substitutions::new(), false).expect("plan");
        assert_eq!(names(&plan), ["base", "tools", "app", "other"]);
        let line = plan.steps[2].summary();
        assert_eq!(line["name"], "app");
        assert_eq!(line["base"], json!({"type": "built", "tag": "base"}));
        assert_eq!(line["imports"][0]["path"], "stacker://tools/usr/bin/tool");
        assert_eq!(plan.steps[1].summary()["build_only"], true);
    }

    #[test]
    fn prerequisites_chain_relative_to_each_file() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "a/base.yaml",
            "base:\n  from: {type: scratch}\n",
        );
        write(
            dir.path(),
            "b/mid.yaml",
            "config:\n  prerequisites: [../a/base.yaml]\nmid:\n  from: {type: built, tag: base}\n",
        );
        write(
            dir.path(),
            "c/only-config.yaml",
            "config:\n  prerequisites: [../b/mid.yaml]\n",
        );
        let top = write(
            dir.path(),
            "top/stacker.yaml",
            "config:\n  prerequisites:\n    - ../c/only-config.yaml\n    - ../a/base.yaml\ntop:\n  from: {type: built, tag: mid}\n",
        );
        let plan = load(&top, &Substitutions::new(), false).expect("plan");
        assert_eq!(names(&plan), ["base", "mid", "top"]);
        assert!(plan.steps[0].file.ends_with("a/base.yaml"));
    }

    #[test]
    fn substitution_reaches_names_urls_and_prerequisites() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "base-1.yaml",
            "base:\n  from: {type: scratch}\n",
        );
        let path = write(
            dir.path(),
            "stacker.yaml",
            "config:
  prerequisites: [base-${{V}}.yaml]
app-${{V}}:
  from:
    type: docker
    url: ${{BASE:docker://}}ubuntu:jammy
  run: echo $V ${{V}}
built-${{V}}:
  from: {type: oci, url: '${{LAYOUT:${{STACKER_OCI_DIR}}}}:base'}
",
        );
        let mut subs = Substitutions::with_builtins(Path::new("/o"), Path::new("/w"));
        subs.set("V", "1");
        let plan = load(&path, &subs, false).expect("plan");
        assert_eq!(names(&plan), ["base", "app-1", "built-1"]);
        assert_eq!(
            plan.steps[1].image.from,
            Base::Docker {
                url: "docker://ubuntu:jammy".into(),
                insecure: false
            }
        );
        assert_eq!(plan.steps[1].image.run, ["echo $V 1"]);
        assert_eq!(
            plan.steps[2].image.from,
            Base::Oci {
                layout: "/o".into(),
                tag: "base".into()
            }
        );
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("`$V` is left alone")),
            "{:?}",
            plan.warnings
        );
    }

    /// The shapes zot's own stacker.yaml uses: a quoted name with a
    /// default, an empty default inside paths, a relative `. -> /dest` bind,
    /// legacy `import` from a build_only image, `$` inside a heredoc.
    #[test]
    fn a_zot_style_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = write(
            dir.path(),
            "stacker.yaml",
            r#"build:
  from:
    type: docker
    url: docker://ghcr.io/project-zot/golang:1.17
  binds:
    - . -> /zotcopy
  run: |
    export PATH='/go/bin:$PATH'
    make COMMIT=${{COMMIT}} OS=${{OS}} ARCH=${{ARCH}} binary${{EXT:}}
    cat > config.json << EOF
    {"http":{"port":"5000"}}
    EOF
  build_only: true

"${{REPO_NAME:zot}}":
  from:
    type: docker
    url: docker://gcr.io/distroless/base
  import:
    - stacker://build/src/zot/bin/zot-${{OS}}-${{ARCH}}${{EXT:}}
    - stacker://build/src/zot/config.json
  run: |
    cp /stacker/zot-${{OS}}-${{ARCH}}${{EXT:}} /usr/bin/zot
  entrypoint:
    - /usr/bin/zot
  volumes:
    - /var/lib/registry
  cmd:
    - serve
    - /etc/zot/config.json
"#,
        );
        let mut subs = Substitutions::new();
        for arg in ["COMMIT=abc", "OS=linux", "ARCH=amd64"] {
            subs.add_arg(arg).expect("arg");
        }
        let plan = load(&path, &subs, false).expect("plan");
        assert_eq!(names(&plan), ["build", "zot"]);
        let build = &plan.steps[0].image;
        assert!(build.build_only);
        assert_eq!(build.binds[0].dest, "/zotcopy");
        assert_eq!(
            build.binds[0].source,
            dir.path().canonicalize().expect("canon").join(".")
        );
        let zot = &plan.steps[1].image;
        assert!(zot.legacy_import);
        assert_eq!(
            zot.imports[0].path,
            "stacker://build/src/zot/bin/zot-linux-amd64"
        );
        assert_eq!(
            zot.cmd.as_deref(),
            Some(&["serve".to_string(), "/etc/zot/config.json".into()][..])
        );
        assert!(build.script().expect("script").contains("binary\n"));
    }

    #[test]
    fn a_hash_on_a_directory_is_ignored_with_a_warning() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("tree")).expect("mkdir");
        let path = write(
            dir.path(),
            "stacker.yaml",
            &format!(
                "img:\n  from: {{type: scratch}}\n  imports:\n    - path: tree\n      hash: {}\n",
                "a".repeat(64)
            ),
        );
        let plan = load(&path, &Substitutions::new(), false).expect("plan");
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(
            plan.warnings[0].contains("image img: import ")
                && plan.warnings[0].contains("on a directory it is ignored"),
            "{:?}",
            plan.warnings
        );
    }

    #[test]
    fn bad_plans() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "loop-a.yaml",
            "config:\n  prerequisites: [loop-b.yaml]\n",
        );
        write(
            dir.path(),
            "loop-b.yaml",
            "config:\n  prerequisites: [loop-a.yaml]\n",
        );
        write(dir.path(), "dup.yaml", "x:\n  from: {type: scratch}\n");
        let cases = [
            (
                "a:\n  from: {type: built, tag: b}\nb:\n  from: {type: built, tag: c}\nc:\n  from: {type: built, tag: a}\n",
                "dependency cycle between images: a → b → c → a",
            ),
            (
                "a:\n  from: {type: scratch}\n  imports: [stacker://a/x]\n",
                "dependency cycle between images: a → a",
            ),
            (
                "a:\n  from: {type: built, tag: nowhere}\n",
                "image a needs image nowhere, which no file of this build defines",
            ),
            ("config:\n  prerequisites: [loop-a.yaml]\n", "prerequisite cycle:"),
            ("config:\n  prerequisites: [missing.yaml]\n", "missing.yaml: cannot read"),
            (
                "config:\n  prerequisites: [dup.yaml]\nx:\n  from: {type: scratch}\n",
                "image x is defined in both",
            ),
            ("a:\n  from: {type: docker, url: '${{NOPE}}'}\n", ":2: undefined substitution ${{NOPE}}"),
            (
                "a:\n  from: {type: scratch}\n  imports: [https://example.com/x]\n",
                "remote import https://example.com/x has no `hash` (--require-hash",
            ),
        ];
        for (text, want) in cases {
            let path = write(dir.path(), "stacker.yaml", text);
            let err = load(&path, &Substitutions::new(), true)
                .expect_err(text)
                .to_string();
            assert!(err.contains(want), "{text}\n got: {err}\nwant: {want}");
        }
    }
}

//! `${{VAR}}` and `${{VAR:default}}` substitution, done textually over the
//! whole stacker.yaml before it is parsed as YAML, as stacker does.
//!
//! Because it runs before the YAML parser, a placeholder may stand anywhere:
//! in an image name, in a `from` URL (even supplying the transport), in a
//! prerequisite path or inside a run script. Values given on the command line
//! (`--substitute`, `--substitute-file`) and the built-ins win; a default is
//! used only for a variable without a value, and a default may itself hold
//! placeholders (`${{A:oci:${{STACKER_OCI_DIR}}:x}}`), which are substituted
//! after. A value is inserted as it is, never substituted again. A shell
//! variable (`$X`, `${X}`) is left alone: it belongs to the run script.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::StackerError;

/// The variables a stacker.yaml is substituted with, in the order they were
/// given (a later `--substitute` of the same name wins, as the last flag does
/// in stacker).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substitutions {
    values: BTreeMap<String, String>,
}

impl Substitutions {
    /// No variables at all.
    pub fn new() -> Substitutions {
        Substitutions::default()
    }

    /// The built-in variables stacker defines for every file:
    /// `STACKER_OCI_DIR`, `STACKER_ROOTFS_DIR` and `STACKER_STACKER_DIR`.
    /// `oci_dir` and `work_dir` are made absolute by the caller so a file
    /// can name them from anywhere.
    pub fn with_builtins(oci_dir: &Path, work_dir: &Path) -> Substitutions {
        let mut subs = Substitutions::new();
        subs.set("STACKER_OCI_DIR", &oci_dir.display().to_string());
        subs.set(
            "STACKER_ROOTFS_DIR",
            &work_dir.join("roots").display().to_string(),
        );
        subs.set(
            "STACKER_STACKER_DIR",
            &work_dir.join(".stacker").display().to_string(),
        );
        subs
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_owned(), value.to_owned());
    }

    /// The value of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every variable and its value, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds one `--substitute KEY=VALUE` argument.
    pub fn add_arg(&mut self, arg: &str) -> Result<(), StackerError> {
        match arg.split_once('=') {
            Some((name, value)) if valid_name(name) => {
                self.set(name, value);
                Ok(())
            }
            _ => Err(StackerError::BadSubstitution {
                arg: arg.to_owned(),
            }),
        }
    }

    /// Adds every variable of a `--substitute-file`: a YAML mapping of names
    /// to scalar values, as stacker reads it.
    pub fn add_file(&mut self, path: &Path) -> Result<(), StackerError> {
        let text = std::fs::read_to_string(path).map_err(|source| StackerError::Read {
            path: path.to_owned(),
            source,
        })?;
        let map: BTreeMap<String, super::file::Scalar> =
            serde_yaml::from_str(&text).map_err(|err| StackerError::yaml(path, &err))?;
        for (name, value) in map {
            if !valid_name(&name) {
                return Err(StackerError::BadSubstitution {
                    arg: format!("{name} (in {})", path.display()),
                });
            }
            self.set(&name, &value.0);
        }
        Ok(())
    }

    /// Substitutes every placeholder in `text` (the contents of `path`),
    /// returning the new text and warnings for people (shell variables that
    /// share a substituted name).
    pub fn apply(&self, text: &str, path: &Path) -> Result<(String, Vec<String>), StackerError> {
        let mut warnings = Vec::new();
        for (name, _) in self.iter() {
            if let Some(form) = mentions_shell_variable(text, name) {
                warnings.push(format!(
                    "{}: `{form}` is left alone (it is a shell variable); write `${{{{{name}}}}}` to substitute it",
                    path.display()
                ));
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut parser = Parser {
            text,
            pos: 0,
            path,
            subs: self,
        };
        parser.run(&mut out, false)?;
        Ok((out, warnings))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// The form (`$NAME` or `${NAME}`) in which `$NAME`, `${NAME}` or
/// `${NAME:…}` (not `${{NAME…}}`) appears in `text`, if it does: the forms
/// current stacker refuses next to a substitution of NAME.
fn mentions_shell_variable(text: &str, name: &str) -> Option<String> {
    let bare = format!("${name}");
    let braced = format!("${{{name}");
    if text.match_indices(&bare).any(|(at, _)| {
        let next = text[at + bare.len()..].bytes().next();
        !matches!(next, Some(b) if b.is_ascii_alphanumeric() || b == b'_')
    }) {
        return Some(bare);
    }
    text.match_indices(&braced)
        .any(|(at, _)| matches!(text[at + braced.len()..].bytes().next(), Some(b'}' | b':')))
        .then(|| format!("{braced}}}"))
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    path: &'a Path,
    subs: &'a Substitutions,
}

impl Parser<'_> {
    fn line(&self, at: usize) -> usize {
        self.text[..at].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// Copies text to `out`, replacing placeholders, up to the end (or, in a
    /// default, up to its closing `}}`, which it consumes). Returns whether
    /// a closing `}}` ended it.
    fn run(&mut self, out: &mut String, in_default: bool) -> Result<bool, StackerError> {
        loop {
            let rest = &self.text[self.pos..];
            let open = rest.find("${{");
            let close = if in_default { rest.find("}}") } else { None };
            match (open, close) {
                (Some(o), Some(c)) if c < o => {
                    out.push_str(&rest[..c]);
                    self.pos += c + 2;
                    return Ok(true);
                }
                (Some(o), _) => {
                    out.push_str(&rest[..o]);
                    let start = self.pos + o;
                    self.pos = start + 3;
                    self.placeholder(out, start)?;
                }
                (None, Some(c)) => {
                    out.push_str(&rest[..c]);
                    self.pos += c + 2;
                    return Ok(true);
                }
                (None, None) => {
                    out.push_str(rest);
                    self.pos = self.text.len();
                    return Ok(false);
                }
            }
        }
    }

    /// Handles one placeholder whose `${{` started at `start`.
    fn placeholder(&mut self, out: &mut String, start: usize) -> Result<(), StackerError> {
        let rest = &self.text[self.pos..];
        let name_len = rest
            .bytes()
            .take_while(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            .count();
        let name = &rest[..name_len];
        let after = &rest[name_len..];
        if name.is_empty() || !(after.starts_with("}}") || after.starts_with(':')) {
            let end = rest.find('\n').unwrap_or(rest.len());
            return Err(StackerError::BadPlaceholder {
                path: self.path.to_owned(),
                line: self.line(start),
                text: format!("${{{{{}", &rest[..end]),
            });
        }
        self.pos += name_len;
        if after.starts_with("}}") {
            self.pos += 2;
            match self.subs.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(StackerError::Undefined {
                        path: self.path.to_owned(),
                        line: self.line(start),
                        name: name.to_owned(),
                    })
                }
            }
            return Ok(());
        }
        // A default: skipped when the variable has a value (so placeholders
        // in it need not be defined), otherwise substituted itself.
        self.pos += 1;
        if let Some(value) = self.subs.get(name) {
            self.skip_default(start)?;
            out.push_str(value);
            return Ok(());
        }
        let mut default = String::new();
        if !self.run(&mut default, true)? {
            return Err(StackerError::BadPlaceholder {
                path: self.path.to_owned(),
                line: self.line(start),
                text: format!("${{{{{name}:… (no closing }}}})"),
            });
        }
        out.push_str(&default);
        Ok(())
    }

    /// Skips a default that is not used, honouring nested placeholders.
    fn skip_default(&mut self, start: usize) -> Result<(), StackerError> {
        let mut depth = 1usize;
        while depth > 0 {
            let rest = &self.text[self.pos..];
            let open = rest.find("${{");
            let close = rest.find("}}");
            match (open, close) {
                (Some(o), Some(c)) if o < c => {
                    depth += 1;
                    self.pos += o + 3;
                }
                (_, Some(c)) => {
                    depth -= 1;
                    self.pos += c + 2;
                }
                (_, None) => {
                    return Err(StackerError::BadPlaceholder {
                        path: self.path.to_owned(),
                        line: self.line(start),
                        text: "${{… (no closing }})".to_owned(),
                    })
                }
            }
        }
        Ok(())
    }
}

/// The absolute form of `path` against `base`, without touching the disk.
pub(crate) fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(pairs: &[(&str, &str)]) -> Substitutions {
        let mut s = Substitutions::new();
        for (k, v) in pairs {
            s.set(k, v);
        }
        s
    }

    #[test]
    fn substitutes() {
        let given = subs(&[
            ("A", "alpha"),
            ("BASE", "docker://"),
            ("STACKER_OCI_DIR", "/work/oci"),
            ("EMPTY", ""),
            ("NESTED", "${{A}}"),
        ]);
        let cases = [
            ("plain text", "plain text"),
            ("${{A}}", "alpha"),
            ("x${{A}}y${{A}}z", "xalphayalphaz"),
            ("url: ${{BASE}}ubuntu:jammy", "url: docker://ubuntu:jammy"),
            ("${{B:beta}}", "beta"),
            ("${{A:beta}}", "alpha"),
            ("${{X:}}", ""),
            ("${{EMPTY:full}}", ""),
            ("${{B:oci:${{STACKER_OCI_DIR}}:x}}", "oci:/work/oci:x"),
            ("${{A:oci:${{STACKER_OCI_DIR}}:x}}", "alpha"),
            ("${{A:${{UNDEFINED}}}}", "alpha"),
            ("${{B:${{C:deep}}}}!", "deep!"),
            ("${{NESTED}}", "${{A}}"),
            ("echo $A ${A} $$", "echo $A ${A} $$"),
            ("a: b\n  c: ${{A}}\n", "a: b\n  c: alpha\n"),
            ("${{B:a:b:c}}", "a:b:c"),
            ("}} stays", "}} stays"),
        ];
        for (text, want) in cases {
            let (got, _) = given.apply(text, Path::new("s.yaml")).expect(text);
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn bad_input_names_the_variable_and_line() {
        let given = subs(&[("A", "alpha")]);
        let cases = [
            (
                "${{MISSING}}",
                "s.yaml:1: undefined substitution ${{MISSING}}",
            ),
            (
                "a\nb: ${{A}} ${{MISSING}}",
                "s.yaml:2: undefined substitution ${{MISSING}}",
            ),
            ("${{B:${{MISSING}}}}", "undefined substitution ${{MISSING}}"),
            ("x: ${{B:never closed", "s.yaml:1: malformed placeholder"),
            ("x: ${{ A }}", "s.yaml:1: malformed placeholder `${{ A }}`"),
        ];
        for (text, want) in cases {
            let err = given.apply(text, Path::new("s.yaml")).unwrap_err();
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn shell_variables_are_left_alone_with_a_warning() {
        let given = subs(&[("HOME", "/x")]);
        let (got, warnings) = given
            .apply("run: echo $HOME $HOMES ${{HOME}}", Path::new("s.yaml"))
            .expect("apply");
        assert_eq!(got, "run: echo $HOME $HOMES /x");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("`$HOME` is left alone"),
            "{warnings:?}"
        );
        let cases = [
            ("echo ${HOME}", 1),
            ("echo ${HOME:-/root}", 1),
            ("echo ${HOMES} $HOMES ${{HOME}}", 0),
            ("echo $HOME_DIR", 0),
        ];
        for (text, want) in cases {
            let (_, warnings) = given.apply(text, Path::new("s.yaml")).expect(text);
            assert_eq!(warnings.len(), want, "{text}: {warnings:?}");
            if want == 1 {
                assert!(
                    warnings[0].contains("`${HOME}` is left alone"),
                    "{warnings:?}"
                );
            }
        }
    }

    #[test]
    fn arguments_and_files() {
        let mut s = Substitutions::new();
        s.add_arg("A=b=c").expect("arg");
        s.add_arg("EMPTY=").expect("empty");
        assert_eq!(s.get("A"), Some("b=c"));
        assert_eq!(s.get("EMPTY"), Some(""));
        let err = s.add_arg("novalue").unwrap_err();
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("subs.yaml");
        std::fs::write(&file, "VERSION: 1.2\nCOUNT: 0777\nNAME: app\n").expect("write");
        s.add_file(&file).expect("file");
        assert_eq!(s.get("VERSION"), Some("1.2"));
        assert_eq!(s.get("COUNT"), Some("0777"));
        let builtins = Substitutions::with_builtins(Path::new("/o"), Path::new("/w"));
        assert_eq!(builtins.get("STACKER_OCI_DIR"), Some("/o"));
        assert_eq!(builtins.get("STACKER_ROOTFS_DIR"), Some("/w/roots"));
        assert_eq!(builtins.get("STACKER_STACKER_DIR"), Some("/w/.stacker"));
    }
}

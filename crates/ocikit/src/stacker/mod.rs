//! stacker.yaml, the build format oci-build reads: substitution, the strict
//! schema of one file, and the build plan across files.
//!
//! A stacker user points oci-build at an existing stacker.yaml, so this
//! module reads the format as stacker does, including the details real files
//! lean on (textual substitution before parsing, YAML 1.1 numbers, every form
//! of `imports`, `binds` and `run`), and is stricter where stacker is silent:
//! an unknown directive is an error naming it and its line.
//!
//! - [`substitute`]: `${{VAR}}` / `${{VAR:default}}` over the whole text;
//! - [`file`]: one file's images and their directives;
//! - [`plan`]: prerequisites and the dependency order of the build.

pub mod file;
pub mod plan;
pub mod substitute;

use std::path::{Path, PathBuf};

pub use file::{Base, Bind, Image, Import, ImportSource, OverlayDir, StackerFile};
pub use plan::{load, Plan, Step};
pub use substitute::Substitutions;

/// Why a stacker.yaml cannot be built. Each names the file (and line, or
/// image) and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StackerError {
    /// The file (or a prerequisite, or a substitution file) cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A YAML syntax error or a directive the schema does not allow.
    #[error("{}{message}", location(path, *line, *column))]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when not known).
        line: usize,
        /// 1-based column (0 when not known).
        column: usize,
        /// What is wrong, in the words of the format.
        message: String,
    },
    /// A `--substitute` argument that is not `KEY=VALUE`.
    #[error("--substitute {arg}: expected KEY=VALUE")]
    BadSubstitution {
        /// The argument as given.
        arg: String,
    },
    /// A `${{` that does not start a well-formed placeholder.
    #[error("{}:{line}: malformed placeholder `{text}` (write ${{{{NAME}}}} or ${{{{NAME:default}}}})", path.display())]
    BadPlaceholder {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The placeholder text (to the end of its line).
        text: String,
    },
    /// A placeholder without a value or a default.
    #[error("{}:{line}: undefined substitution ${{{{{name}}}}} (give it with --substitute {name}=VALUE, or a default: ${{{{{name}:value}}}})", path.display())]
    Undefined {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The variable.
        name: String,
    },
    /// An image whose directives are well-formed YAML but do not make sense.
    #[error("{}: image {image}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The image.
        image: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Two files of one build define the same image.
    #[error("image {name} is defined in both {} and {} (image names must be unique across a build)", first.display(), second.display())]
    DuplicateImage {
        /// The image.
        name: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// An image needs another image that no file of the build defines.
    #[error("{}: image {image} needs image {dependency}, which no file of this build defines (define it, or list its file in config.prerequisites)", path.display())]
    UnknownDependency {
        /// The file of the image.
        path: PathBuf,
        /// The image.
        image: String,
        /// The image it needs.
        dependency: String,
    },
    /// Images that need each other (`built` bases, `stacker://` imports).
    #[error("dependency cycle between images: {}", cycle.join(" → "))]
    Cycle {
        /// The images around the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// Files that list each other in `config.prerequisites`.
    #[error("prerequisite cycle: {}", chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" → "))]
    PrerequisiteCycle {
        /// The files around the cycle.
        chain: Vec<PathBuf>,
    },
}

/// `path:line:column: `, or `path: ` when the line is not known (an error
/// found after YAML merge keys were applied).
fn location(path: &Path, line: usize, column: usize) -> String {
    if line == 0 {
        format!("{}: ", path.display())
    } else {
        format!("{}:{line}:{column}: ", path.display())
    }
}

impl StackerError {
    /// A YAML error of `path`, worded in the format's terms ("directive"
    /// rather than serde's "field"), with its line and column.
    pub(crate) fn yaml(path: &Path, err: &serde_yaml::Error) -> StackerError {
        let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut message = err.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        let message = message
            .replace("unknown field", "unknown directive")
            .replace(", expected one of", " (expected one of")
            .replace(", expected ", " (expected ")
            .replace("struct RawImage", "a map of directives")
            .replace("struct RawFrom", "a map with type, url, tag, insecure")
            .replace("struct RawConfig", "a map with prerequisites")
            .replace("struct RawOverlayDir", "a map with source and dest");
        let message = if message.contains(" (expected") {
            format!("{message})")
        } else {
            message
        };
        StackerError::Yaml {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    }
}

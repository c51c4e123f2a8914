//! ocikit: the shared library behind the `oci-*` tools.
//!
//! Every protocol, format and algorithm the tools use lives here, one concept
//! per module, so that a later tool reuses what an earlier one built instead of
//! growing its own copy. The tools themselves only parse arguments and call in.
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)
)]

pub mod access;
pub mod archive;
pub mod build;
pub mod copy;
pub mod cosign;
pub mod digest;
pub mod htpasswd;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod layout;
pub mod manifest;
pub mod name;
pub mod pipe;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod server;
pub mod stacker;
pub mod storage;
pub mod watch;
pub mod zot_config;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use layout::Layout;
pub use reference::{ImageReference, Target};

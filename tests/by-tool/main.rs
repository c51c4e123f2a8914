//! End-to-end tests, one module per tool: the real binaries against real peers.
//! Run them with `cargo xtask test`, which builds the binaries first.

mod oci_build;
mod oci_copy;
mod oci_copy_referrers;
mod oci_copy_registry;
mod oci_copy_tls;
mod oci_inspect;
mod oci_serve;
mod oci_serve_prod;
mod oci_sign;
mod oci_verify;

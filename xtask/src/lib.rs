//! The parts of xtask other code reuses: the multi-process tests make
//! their certificates with the same code as `cargo xtask certs`.

pub mod certs;

/// The fuzz targets `cargo xtask fuzz` runs, each a parser of untrusted
/// bytes (fuzz/targets/); the slowest (it writes files) first, so parallel
/// runs end together.
pub const FUZZ_TARGETS: &[&str] = &[
    "wal_segments",
    "peer_frames",
    "snapshot_file",
    "kv_snapshot",
    "kv_command",
    "http_request",
];

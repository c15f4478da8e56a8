//! The parts of xtask other code reuses: the multi-process tests make
//! their certificates with the same code as `cargo xtask certs`.

pub mod certs;

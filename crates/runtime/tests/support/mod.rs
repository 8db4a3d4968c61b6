//! The shared fixtures (weir-testkit), plus running YAML pipelines in a test.
#![allow(dead_code, unused_imports)]

pub mod pipelines;

pub use weir_testkit::*;
pub use weir_testkit::{https, registry, tls};

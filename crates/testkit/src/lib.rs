//! Test fixtures for Weir's own tests and for plugin authors (dev-only): real things, not mocks.
//! A Tansu Kafka-protocol broker per test with an independent rdkafka client ([`kafka`]) and a raw
//! Fetch that shows record batches as the broker holds them ([`batches`]), a real
//! HTTPS server over rustls that records what it receives ([`https`]), a Confluent-compatible
//! Schema Registry ([`registry`]), a `redis-server` per test ([`redis`]), TLS certificates made with openssl ([`tls`]), and a TCP proxy that takes a service away
//! and gives it back ([`proxy`]). A fixture
//! whose program is missing fails the test with a message that says how to install it.

pub mod batches;
pub mod https;
pub mod kafka;
pub mod proxy;
pub mod redis;
pub mod registry;
pub mod tls;

pub use kafka::*;

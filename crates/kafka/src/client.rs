//! The librdkafka configuration of a client, from its properties.

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

use crate::settings::ClientProperties;

/// A librdkafka client configuration with every property set and librdkafka's own logging at
/// warning level (its messages reach Weir's log through [`crate::ClientDiagnostics`]).
pub fn client_config(props: &ClientProperties) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &props.properties {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

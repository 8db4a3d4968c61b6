//! Connection settings shared by the Kafka source and sink: TLS, SASL and raw librdkafka options,
//! turned into client properties.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use weir_core::config::secret::{Secret, SecretError};

/// TLS to the brokers (`security.protocol` `ssl`, or `sasl_ssl` with `sasl`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// PEM file of the certificate authorities to trust; the system roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted `key_file`.
    #[serde(default)]
    pub key_password: Option<Secret>,
    /// Check that the broker's certificate names the host connected to. Turn off only for test
    /// brokers whose certificates lack the right name.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

/// SASL mechanisms Weir configures directly (anything else through `options:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum SaslMechanism {
    /// Username and password in the clear (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL authentication (`security.protocol` `sasl_plaintext`, or `sasl_ssl` with `tls`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    /// User name (for Confluent Cloud, the API key).
    pub username: String,
    /// Password (for Confluent Cloud, the API secret): `${ENV}` or `file:/path`.
    pub password: Secret,
}

/// One librdkafka property value; numbers and booleans are written as text.
#[derive(Clone, PartialEq, Eq, JsonSchema)]
#[schemars(with = "serde_json::Value")]
pub struct ClientOption(pub String);

impl fmt::Debug for ClientOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for ClientOption {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ClientOption;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ClientOption, E> {
                Ok(ClientOption(v.to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ClientOption, E> {
                Ok(ClientOption(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ClientOption, E> {
                Ok(ClientOption(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ClientOption, E> {
                Ok(ClientOption(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ClientOption, E> {
                Ok(ClientOption(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Consumer properties Weir owns, with what to use instead: `options:` naming one is refused,
/// since each of them can silently turn off commit-after-ack or override another option.
pub const RESERVED_CONSUMER_OPTIONS: &[(&str, &str)] = &[
    (
        "enable.auto.offset.store",
        "Weir stores an offset only once its record is done (at-least-once)",
    ),
    (
        "enable.auto.commit",
        "Weir commits the offsets of records that are done; set how often with `commit_interval`",
    ),
    ("auto.commit.interval.ms", "use `commit_interval`"),
    ("auto.offset.reset", "use `start_from: earliest | latest`"),
    ("group.id", "use `group_id`"),
    ("bootstrap.servers", "use `bootstrap_servers`"),
    (
        "enable.partition.eof",
        "Weir reads partitions without end-of-partition events",
    ),
];

/// Producer properties Weir owns, with what to use instead.
pub const RESERVED_PRODUCER_OPTIONS: &[(&str, &str)] = &[
    (
        "enable.idempotence",
        "Weir's producer is idempotent, so its retries cannot duplicate or reorder",
    ),
    (
        "acks",
        "Weir waits for all in-sync replicas (`acks=all`), or a broker loss loses records",
    ),
    ("compression.codec", "use `compression`"),
    ("compression.type", "use `compression`"),
    ("linger.ms", "use `linger`"),
    ("batch.size", "use `batch_bytes`"),
    ("message.timeout.ms", "use `message_timeout`"),
    ("bootstrap.servers", "use `bootstrap_servers`"),
];

/// Refuses `options:` keys in `reserved`, at `options.<key>`, naming what to use instead.
pub fn check_reserved(
    options: &BTreeMap<String, ClientOption>,
    reserved: &[(&str, &str)],
) -> Result<(), (String, String)> {
    for k in options.keys() {
        if let Some((_, hint)) = reserved.iter().find(|(r, _)| r == k) {
            return Err((
                format!("options.{k}"),
                format!("`{k}` is set by Weir and cannot be overridden: {hint}"),
            ));
        }
    }
    Ok(())
}

/// Client properties for a connection, in the order they are applied; `secrets` lists the values
/// to redact from client errors.
#[derive(Default)]
pub struct ClientProperties {
    /// `(name, value)` pairs for librdkafka.
    pub properties: Vec<(String, String)>,
    /// Secret values, to redact from messages.
    pub secrets: Vec<String>,
}

impl fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.properties {
            if self.secrets.contains(v) {
                m.entry(k, &"<redacted>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

impl ClientProperties {
    /// Sets (or replaces) a property.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.properties.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.properties.push((name.to_owned(), value)),
        }
    }
    /// The value of a property.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Applies the raw librdkafka `options:` over everything set so far; values of keys that
    /// name a password or secret are redacted from messages.
    pub fn apply_options(&mut self, options: &BTreeMap<String, ClientOption>) {
        for (k, v) in options {
            if k.contains("password") || k.contains("secret") {
                self.secrets.push(v.0.clone());
            }
            self.set(k, v.0.clone());
        }
    }

    /// Replaces secret values in a message with `***`.
    pub fn redact(&self, message: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        weir_core::config::secret::redact(message, &secrets)
    }
}

/// Builds the connection properties for `bootstrap_servers`, `tls` and `sasl`, with `client.id`.
/// Connectors then set their own defaults and apply the raw `options:` last
/// ([`ClientProperties::apply_options`]).
pub fn client_properties(
    bootstrap_servers: &str,
    tls: Option<&KafkaTls>,
    sasl: Option<&KafkaSasl>,
    client_id: &str,
) -> Result<ClientProperties, SecretError> {
    let mut p = ClientProperties::default();
    p.set("bootstrap.servers", bootstrap_servers);
    p.set("client.id", client_id);
    // Reconnect at least once a second while the brokers are away, as the Java client does
    // (librdkafka backs off to 10 s, so records waited up to 10 s after the brokers were back).
    p.set("reconnect.backoff.max.ms", "1000");
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    p.set("security.protocol", protocol);
    if let Some(tls) = tls {
        if let Some(ca) = &tls.ca_file {
            p.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(cert) = &tls.cert_file {
            p.set("ssl.certificate.location", cert.display().to_string());
        }
        if let Some(key) = &tls.key_file {
            p.set("ssl.key.location", key.display().to_string());
        }
        if let Some(pw) = &tls.key_password {
            let pw = pw.reveal()?;
            p.secrets.push(pw.clone());
            p.set("ssl.key.password", pw);
        }
        p.set(
            "ssl.endpoint.identification.algorithm",
            if tls.verify_hostname { "https" } else { "none" },
        );
    }
    if let Some(sasl) = sasl {
        p.set("sasl.mechanism", sasl.mechanism.as_str());
        p.set("sasl.username", sasl.username.clone());
        let pw = sasl.password.reveal()?;
        p.secrets.push(pw.clone());
        p.set("sasl.password", pw);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_follows_tls_and_sasl() {
        let p = client_properties("b:9092", None, None, "weir").unwrap();
        assert_eq!(p.get("security.protocol"), Some("plaintext"));
        let tls = KafkaTls {
            ca_file: Some("ca.pem".into()),
            verify_hostname: true,
            ..Default::default()
        };
        let sasl = KafkaSasl {
            mechanism: SaslMechanism::ScramSha512,
            username: "u".into(),
            password: Secret::new("pa55word"),
        };
        let p = client_properties("b:9092", Some(&tls), Some(&sasl), "weir").unwrap();
        assert_eq!(p.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(p.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(p.get("ssl.ca.location"), Some("ca.pem"));
        assert!(!format!("{p:?}").contains("pa55word"));
        assert_eq!(p.redact("login pa55word failed"), "login *** failed");
    }

    #[test]
    fn diagnostics_redact_and_keep_the_last_distinct_problems() {
        let d = ClientDiagnostics::new("p/c".into(), vec!["hunter2".into()]);
        d.log(3, "FAIL", "ssl handshake failed for user:hunter2");
        d.log(7, "FETCH", "debug noise");
        d.error("all brokers down");
        d.error("all brokers down");
        let s = d.summary().unwrap();
        assert_eq!(
            s,
            "FAIL: ssl handshake failed for user:***; all brokers down"
        );
        for i in 0..5 {
            d.error(&format!("e{i}"));
        }
        assert_eq!(d.summary().unwrap(), "e2; e3; e4");
    }

    #[test]
    fn options_override_defaults() {
        let mut opts = BTreeMap::new();
        opts.insert("security.protocol".to_owned(), ClientOption("ssl".into()));
        opts.insert("sasl.password".to_owned(), ClientOption("pa55word".into()));
        let mut p = client_properties("b:9092", None, None, "weir").unwrap();
        p.apply_options(&opts);
        assert_eq!(p.get("security.protocol"), Some("ssl"));
        assert_eq!(p.redact("pa55word"), "***");
    }
}

/// What a Kafka client tells its component: librdkafka's logs and errors go to `tracing` with
/// secrets redacted, and the last few problems are kept so a failure can say why.
///
/// Connection trouble (refused or dropped connections, all brokers down, a failed resolve or
/// handshake) is an outage, not a stream of warnings: its first message is a warning, the
/// repeats librdkafka sends for every connection and retry are debug lines (with a reminder
/// every minute while it lasts), and [`ClientDiagnostics::connected`] logs its end once with
/// its length, when records flow again.
#[derive(Debug)]
pub struct ClientDiagnostics {
    name: String,
    secrets: Vec<String>,
    recent: RecentErrors,
    outage: Outage,
}

/// An ongoing connection outage, if any.
#[derive(Debug, Default)]
struct Outage {
    /// Set while an outage lasts: the cheap check on every success path.
    down: std::sync::atomic::AtomicBool,
    state: std::sync::Mutex<Option<OutageState>>,
}

#[derive(Debug)]
struct OutageState {
    since: std::time::Instant,
    errors: u64,
    reminded: std::time::Instant,
}

/// How often an outage that goes on is logged again as a warning.
const OUTAGE_REMINDER: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a librdkafka message reports connection trouble (as opposed to an error about one
/// request or record): what librdkafka repeats for every connection and reconnection attempt.
pub fn is_connection_trouble(message: &str) -> bool {
    const SIGNS: [&str; 9] = [
        "BrokerTransportFailure",
        "AllBrokersDown",
        "Broker transport failure",
        "broker connections are down",
        "Connection refused",
        "Connection reset",
        "Disconnected",
        "Failed to resolve",
        "Connect to ",
    ];
    SIGNS.iter().any(|s| message.contains(s))
}

impl ClientDiagnostics {
    /// For the component `name` (`pipeline/component`), redacting `secrets`.
    pub fn new(name: String, secrets: Vec<String>) -> Self {
        ClientDiagnostics {
            name,
            secrets,
            recent: RecentErrors::default(),
            outage: Outage::default(),
        }
    }

    /// The component name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces secret values in a message with `***`.
    pub fn redact(&self, message: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        weir_core::config::secret::redact(message, &secrets)
    }

    /// A librdkafka log line; `severity` is its syslog level (0 emergency … 7 debug). Warnings and
    /// worse are remembered: connection problems (TLS, authentication) arrive this way.
    pub fn log(&self, severity: i32, facility: &str, message: &str) {
        let msg = self.redact(message);
        if severity <= 4 && is_connection_trouble(&msg) {
            self.trouble(&format!("librdkafka {facility}: {msg}"));
        } else {
            match severity {
                ..=3 => tracing::error!(component = %self.name, "librdkafka {facility}: {msg}"),
                4 => tracing::warn!(component = %self.name, "librdkafka {facility}: {msg}"),
                _ => tracing::debug!(component = %self.name, "librdkafka {facility}: {msg}"),
            }
        }
        if severity <= 4 {
            self.recent.record(format!("{facility}: {msg}"));
        }
    }

    /// A client error event.
    pub fn error(&self, message: &str) {
        self.problem("kafka client error", message);
    }

    /// An error the component met (a failed poll, say), logged as [`ClientDiagnostics::error`]
    /// logs client errors: connection trouble as part of the outage, anything else as a warning.
    pub fn problem(&self, context: &str, message: &str) {
        let msg = self.redact(message);
        if is_connection_trouble(&msg) {
            self.trouble(&format!("{context}: {msg}"));
        } else {
            tracing::warn!(component = %self.name, "{context}: {msg}");
        }
        self.recent.record(msg);
    }

    /// Connection trouble: the first starts an outage (a warning), the rest are debug lines with
    /// a warning again every [`OUTAGE_REMINDER`].
    fn trouble(&self, msg: &str) {
        use std::sync::atomic::Ordering;
        let now = std::time::Instant::now();
        let mut state = self.outage.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.as_mut() {
            None => {
                *state = Some(OutageState {
                    since: now,
                    errors: 1,
                    reminded: now,
                });
                self.outage.down.store(true, Ordering::Release);
                tracing::warn!(
                    component = %self.name,
                    "lost the connection to the Kafka brokers ({msg}); retrying in the background, \
                     records wait (until `message_timeout` in a sink); repeats are logged at debug \
                     level until the connection is back"
                );
            }
            Some(o) => {
                o.errors += 1;
                if now.duration_since(o.reminded) >= OUTAGE_REMINDER {
                    o.reminded = now;
                    tracing::warn!(
                        component = %self.name,
                        "still no connection to the Kafka brokers after {:.0?} ({} connection errors; the last: {msg})",
                        now.duration_since(o.since),
                        o.errors
                    );
                } else {
                    tracing::debug!(component = %self.name, "{msg}");
                }
            }
        }
    }

    /// Records flow again (a fetch or a delivery succeeded): ends an outage, logging once how
    /// long it lasted. One atomic load when there is none, so it can sit on every success path.
    pub fn connected(&self) {
        use std::sync::atomic::Ordering;
        if !self.outage.down.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.outage.state.lock().unwrap_or_else(|p| p.into_inner());
        self.outage.down.store(false, Ordering::Release);
        if let Some(o) = state.take() {
            tracing::info!(
                component = %self.name,
                "connected to the Kafka brokers again after {:.1?} ({} connection errors in between)",
                o.since.elapsed(),
                o.errors
            );
        }
    }

    /// Whether an outage is going on (connection trouble since the last success).
    pub fn is_down(&self) -> bool {
        self.outage.down.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The remembered problems joined with `; `, if any.
    pub fn summary(&self) -> Option<String> {
        self.recent.summary()
    }

    /// What the last problems mean for the operator, when they are ones Weir recognises
    /// (TLS trust, a missing client certificate, refused credentials), naming the option to
    /// fix; `None` otherwise.
    pub fn explain(&self) -> Option<&'static str> {
        explain(&self.summary()?)
    }
}

/// What a librdkafka or OpenSSL message means, and which option fixes it.
pub fn explain(detail: &str) -> Option<&'static str> {
    let d = detail.to_ascii_lowercase();
    if d.contains("certificate required") {
        Some("the brokers require a client certificate: give `tls.cert_file` and `tls.key_file`")
    } else if d.contains("certificate verify failed") {
        Some(
            "the brokers' certificate is not trusted: `tls.ca_file` must hold the CA that signed it, and it must name the host in `bootstrap_servers`",
        )
    } else if d.contains("unknown ca") || d.contains("bad certificate") {
        Some(
            "the brokers refused the client certificate: `tls.cert_file` must be signed by a CA they trust",
        )
    } else if d.contains("sasl authentication") || d.contains("authentication failed") {
        Some(
            "the brokers refused the credentials: check `sasl.mechanism`, `sasl.username` and `sasl.password`",
        )
    } else if d.contains("wrong version number") || d.contains("packet length too long") {
        Some("TLS and plaintext do not match: the listener speaks one and `tls` asks for the other")
    } else {
        None
    }
}

/// The last few distinct problems a Kafka client reported (connection, TLS, authentication), so
/// a failure can say why, not just that the brokers were unreachable.
#[derive(Debug, Default)]
pub struct RecentErrors(std::sync::Mutex<Vec<String>>);

impl RecentErrors {
    const KEEP: usize = 3;

    /// Remembers a message (repeats are kept once; the oldest goes beyond three).
    pub fn record(&self, message: String) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.contains(&message) {
            return;
        }
        if v.len() == Self::KEEP {
            v.remove(0);
        }
        v.push(message);
    }

    /// The remembered messages joined with `; `, if any.
    pub fn summary(&self) -> Option<String> {
        let v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (!v.is_empty()).then(|| v.join("; "))
    }
}

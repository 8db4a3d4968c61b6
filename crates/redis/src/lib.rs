//! The Redis client the `redis` source, sink and lookup share: connection options (a
//! `redis://` or `rediss://` URL, an ACL user and password, TLS with a CA file, a database), a
//! connection made on first use and kept by redis-rs's auto-reconnecting `ConnectionManager`,
//! and one classification of failures (the server or connection cannot take commands now, or
//! the server refused this command).
//!
//! Secrets never reach a message: a URL that carries a password is refused (the password
//! belongs in `password`, a [`Secret`]), errors name the server by `host:port` only, and every
//! client message has the password replaced by `***` before it leaves this crate.

pub mod streams;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use redis;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisError};
use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::config::Secret;

/// TLS to Redis (a `rediss://` URL). The system's roots verify the server unless `ca_file` is
/// given.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisTls {
    /// PEM file of the certificate authorities to trust (instead of the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that check clients (`tls-auth-clients yes`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Where and how to connect, as a connector's options give it.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions<'a> {
    /// `redis://host:port` or `rediss://host:port` (TLS), without credentials or database.
    pub url: &'a str,
    /// The ACL user (`AUTH username password`); `None` authenticates as `default`.
    pub username: Option<&'a str>,
    /// The password, if the server wants one.
    pub password: Option<&'a Secret>,
    /// The database index (`SELECT`).
    pub database: i64,
    /// TLS files, for `rediss://`.
    pub tls: Option<&'a RedisTls>,
    /// Time allowed for each command's answer.
    pub timeout: Duration,
    /// Time allowed for connecting (TCP, TLS, `AUTH`, `SELECT`).
    pub connect_timeout: Duration,
}

/// An option is wrong; `option` names it relative to the component (`url`, `tls.ca_file`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionError {
    /// The option at fault.
    pub option: &'static str,
    /// What is wrong and what to do; never the URL or a secret.
    pub message: String,
}

fn option_error(option: &'static str, message: impl Into<String>) -> OptionError {
    OptionError {
        option,
        message: message.into(),
    }
}

/// How a Redis command failed, which decides what the connector does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// Redis cannot take commands now: the connection failed or dropped, a timeout, refused
    /// credentials, or a server reply from [`RETRIABLE_CODES`] (`LOADING`, `BUSY`,
    /// `TRYAGAIN`...). Try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The server refused this command (`WRONGTYPE`, `NOPERM` on its key, a syntax error):
    /// trying it again will not help.
    #[error("{0}")]
    Refused(String),
}

impl Failure {
    /// True for [`Failure::Unavailable`].
    pub fn is_retriable(&self) -> bool {
        matches!(self, Failure::Unavailable(_))
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Unavailable(m) | Failure::Refused(m) => m,
        }
    }
}

/// Server error codes that mean "not now" rather than "not this command": the dataset is
/// loading, a script is running, a cluster slot moves or is down, the server is a replica
/// (failover in progress), out of memory or unable to persist, or the credentials were refused
/// (an operator's problem, not the records'). Every other error reply refuses the command.
pub const RETRIABLE_CODES: &[&str] = &[
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "READONLY",
    "NOREPLICAS",
    "OOM",
    "MISCONF",
    "NOAUTH",
    "WRONGPASS",
];

/// True when an error reply with this code is worth retrying (see [`RETRIABLE_CODES`]).
pub fn is_retriable_code(code: &str) -> bool {
    RETRIABLE_CODES.contains(&code)
}

/// What rustls's message for a failed handshake means for the `tls` options, and what to
/// change: a server certificate rustls refused (`invalid peer certificate: UnknownIssuer` when
/// the trusted CAs did not sign it; `Expired`, `NotValidForName`...), or a server that checks
/// clients and got no certificate (the alert `CertificateRequired`).
fn tls_hint(text: &str) -> Option<(&'static str, &'static str)> {
    if text.contains("invalid peer certificate") {
        Some((
            "the server's certificate is not trusted",
            "it must be signed by a CA in `tls.ca_file` (or, without it, the system's roots), \
             be valid now and name the host of the url",
        ))
    } else if text.contains("CertificateRequired") {
        Some((
            "the server requires a client certificate",
            "give `tls.cert_file` and `tls.key_file`",
        ))
    } else {
        None
    }
}

/// A Redis client: options checked and files read when the component is built, connected on
/// first use. Cheap to share behind an `Arc`; the connection it hands out is a clonable handle
/// to one multiplexed connection that reconnects by itself after a failure.
pub struct RedisClient {
    client: redis::Client,
    address: Arc<str>,
    username: Option<String>,
    secrets: Vec<String>,
    tls: bool,
    timeout: Duration,
    connect_timeout: Duration,
    manager: tokio::sync::Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisClient({})", self.address)
    }
}

impl RedisClient {
    /// Checks the options and reads the TLS files and the password now, so mistakes surface at
    /// start-up; connects nothing.
    pub fn new(opts: &ConnectOptions<'_>) -> Result<Self, OptionError> {
        let url = opts.url.trim();
        let tls = if url.starts_with("rediss://") {
            true
        } else if url.starts_with("redis://") {
            false
        } else {
            return Err(option_error(
                "url",
                "must start with redis:// (or rediss:// for TLS), as in redis://127.0.0.1:6379",
            ));
        };
        // The parser's messages are fixed texts; the URL itself is never quoted back, since it
        // may hold a password.
        let info = url.into_connection_info().map_err(|e| {
            option_error(
                "url",
                format!(
                    "not a Redis URL ({}): write redis://host:port or rediss://host:port",
                    e.detail().unwrap_or_else(|| e.category())
                ),
            )
        })?;
        let settings = info.redis_settings();
        if settings.password().is_some() {
            return Err(option_error(
                "url",
                "the url carries a password: give it in `password` (for instance \
                 \"${REDIS_PASSWORD}\" or file:/path) so it is never shown, and remove it from the url",
            ));
        }
        if settings.username().is_some() {
            return Err(option_error(
                "url",
                "the url carries a user name: give it in `username`",
            ));
        }
        if settings.db() != 0 {
            return Err(option_error(
                "url",
                "the url names a database: give it in `database` instead",
            ));
        }
        if opts.database < 0 {
            return Err(option_error("database", "must be 0 or more"));
        }
        let address: Arc<str> = match info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                format!("{host}:{port}").into()
            }
            _ => {
                return Err(option_error(
                    "url",
                    "must be a TCP address: redis://host:port or rediss://host:port",
                ));
            }
        };
        let mut secrets = Vec::new();
        let mut settings = settings.clone().set_db(opts.database);
        if let Some(user) = opts.username {
            if user.is_empty() {
                return Err(option_error("username", "must not be empty"));
            }
            settings = settings.set_username(user);
        }
        if let Some(p) = opts.password {
            let p = p
                .reveal()
                .map_err(|e| option_error("password", e.to_string()))?;
            settings = settings.set_password(&p);
            secrets.push(p);
        }
        let info = info.set_redis_settings(settings);
        let client = match opts.tls {
            Some(t) if !tls => {
                let _ = t;
                return Err(option_error(
                    "tls",
                    "TLS options need a rediss:// url (redis:// is plain TCP)",
                ));
            }
            Some(t) => {
                let read = |p: &PathBuf, what: &'static str| {
                    std::fs::read(p).map_err(|e| {
                        option_error(what, format!("cannot read {}: {e}", p.display()))
                    })
                };
                let root_cert = t
                    .ca_file
                    .as_ref()
                    .map(|p| read(p, "tls.ca_file"))
                    .transpose()?;
                let client_tls = match (&t.cert_file, &t.key_file) {
                    (None, None) => None,
                    (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                        client_cert: read(c, "tls.cert_file")?,
                        client_key: read(k, "tls.key_file")?,
                    }),
                    (Some(_), None) => {
                        return Err(option_error("tls.key_file", "needed with tls.cert_file"));
                    }
                    (None, Some(_)) => {
                        return Err(option_error("tls.cert_file", "needed with tls.key_file"));
                    }
                };
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls,
                        root_cert,
                    },
                )
                .map_err(|e| option_error("tls", format!("cannot use the TLS files: {e}")))?
            }
            None => redis::Client::open(info)
                .map_err(|e| option_error("url", format!("cannot use the url: {e}")))?,
        };
        Ok(RedisClient {
            client,
            address,
            username: opts.username.map(str::to_owned),
            secrets,
            tls,
            timeout: opts.timeout,
            connect_timeout: opts.connect_timeout,
            manager: tokio::sync::Mutex::new(None),
        })
    }

    /// A client for the same server with its own connection and `extra` more time for each
    /// answer: for blocking commands (`XREADGROUP ... BLOCK`), which would hold up every other
    /// command on a shared connection.
    pub fn dedicated(&self, extra: Duration) -> RedisClient {
        RedisClient {
            client: self.client.clone(),
            address: self.address.clone(),
            username: self.username.clone(),
            secrets: self.secrets.clone(),
            tls: self.tls,
            timeout: self.timeout + extra,
            connect_timeout: self.connect_timeout,
            manager: tokio::sync::Mutex::new(None),
        }
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The connection, made on first use (and again after refused credentials).
    pub async fn connection(&self) -> Result<ConnectionManager, Failure> {
        let mut slot = self.manager.lock().await;
        if let Some(m) = &*slot {
            return Ok(m.clone());
        }
        if self.tls {
            // rustls needs a process-wide provider when more than one is compiled in.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout))
            // Reconnects are retried a little here; past that the connector's own retries
            // (the runner's backoff, the source's read loop) take over.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        match ConnectionManager::new_with_config(self.client.clone(), config).await {
            Ok(m) => {
                *slot = Some(m.clone());
                Ok(m)
            }
            Err(e) => Err(Failure::Unavailable(format!(
                "cannot connect to Redis at {}: {}",
                self.address,
                self.describe(&e)
            ))),
        }
    }

    /// Classifies a failed command and says what happened, without secrets. After refused
    /// credentials the connection is dropped, so the next command authenticates afresh (the
    /// connection manager would otherwise keep the failed connection).
    pub async fn failure(&self, e: &RedisError) -> Failure {
        let message = format!("Redis at {}: {}", self.address, self.describe(e));
        let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
        if auth {
            *self.manager.lock().await = None;
        }
        match e.code() {
            Some(code) if !is_retriable_code(code) => Failure::Refused(message),
            // Not an error reply (I/O, timeouts, the client's own failures) or a "not now".
            _ => Failure::Unavailable(message),
        }
    }

    /// Classifies one command's error within a pipeline whose round trip succeeded (its
    /// error reply, by code).
    pub fn reply_failure(&self, e: &RedisError) -> Failure {
        let message = self.describe(e);
        match e.code() {
            Some(code) if !is_retriable_code(code) => Failure::Refused(message),
            _ => Failure::Unavailable(message),
        }
    }

    fn describe(&self, e: &RedisError) -> String {
        let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("WRONGPASS"));
        if auth {
            return format!(
                "authentication refused (WRONGPASS) for user `{}`: check `username` and `password`",
                self.username.as_deref().unwrap_or("default")
            );
        }
        let text = match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            _ => e.to_string(),
        };
        if self.tls
            && let Some((what, fix)) = tls_hint(&text)
        {
            return self.redact(&format!("{what} ({text}): {fix}"));
        }
        self.redact(&text)
    }

    /// `text` with the password replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let refs: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        weir_core::config::secret::redact(text, &refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> ConnectOptions<'_> {
        ConnectOptions {
            url,
            username: None,
            password: None,
            database: 0,
            tls: None,
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_being_repeated() {
        for url in [
            "redis://weir:hunter22@127.0.0.1:6379",
            "redis://:hunter22@127.0.0.1:6379",
            "rediss://weir:hunter22@example.com",
        ] {
            let e = RedisClient::new(&opts(url)).unwrap_err();
            assert_eq!(e.option, "url");
            assert!(e.message.contains("`password`"), "{e}");
            assert!(!e.message.contains("hunter22"), "{e}");
            assert!(!format!("{e:?}").contains("hunter22"), "{e:?}");
        }
    }

    #[test]
    fn urls_are_checked_without_echoing_them() {
        for (url, says) in [
            ("http://secret-host:6379", "must start with redis://"),
            ("redis://", "not a Redis URL"),
            ("redis://127.0.0.1:6379/3", "`database`"),
            ("redis://someone@127.0.0.1:6379", "`username`"),
        ] {
            let e = RedisClient::new(&opts(url)).unwrap_err();
            assert!(e.message.contains(says), "{url}: {e}");
            assert!(!e.message.contains("secret-host"), "{url}: {e}");
        }
        assert!(RedisClient::new(&opts("redis://127.0.0.1:6379")).is_ok());
        assert_eq!(
            RedisClient::new(&opts("redis://localhost"))
                .unwrap()
                .address(),
            "localhost:6379"
        );
    }

    #[test]
    fn tls_options_need_rediss_and_readable_files() {
        let tls = RedisTls {
            ca_file: Some("/nonexistent/weir/ca.pem".into()),
            ..Default::default()
        };
        let mut o = opts("redis://127.0.0.1:6379");
        o.tls = Some(&tls);
        assert_eq!(RedisClient::new(&o).unwrap_err().option, "tls");
        o.url = "rediss://127.0.0.1:6379";
        let e = RedisClient::new(&o).unwrap_err();
        assert_eq!(e.option, "tls.ca_file");
        assert!(e.message.contains("/nonexistent/weir/ca.pem"), "{e}");
    }

    #[test]
    fn the_password_is_redacted_from_messages() {
        let pw = Secret::new("s3cr3t-pw");
        let mut o = opts("redis://127.0.0.1:6379");
        o.password = Some(&pw);
        let c = RedisClient::new(&o).unwrap();
        assert_eq!(
            c.redact("AUTH weir s3cr3t-pw failed"),
            "AUTH weir *** failed"
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn only_not_now_codes_are_retriable() {
        for code in ["LOADING", "BUSY", "TRYAGAIN", "READONLY", "OOM", "NOAUTH"] {
            assert!(is_retriable_code(code), "{code}");
        }
        for code in ["WRONGTYPE", "ERR", "NOPERM", "NOGROUP", "EXECABORT"] {
            assert!(!is_retriable_code(code), "{code}");
        }
    }
}

//! A Confluent-compatible Schema SchemaRegistryClient client (schema_registry_converter over reqwest with
//! rustls) with Weir's error classification, a per-schema catalogue and counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;
use weir_core::config::format::SchemaRegistryConfig;

use crate::FormatError;
use crate::avro_json::Compiled;

/// A schema the runner has used, for the admin API and `weir` diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// SchemaRegistryClient id.
    pub id: u32,
    /// The subjects it was found under (a schema looked up by subject, or returned with one);
    /// one schema can sit under several subjects with the same id.
    pub subjects: Vec<String>,
    /// Full name of the top-level named type.
    pub name: Option<String>,
    /// Values decoded with this schema.
    pub decoded: u64,
    /// Values encoded with this schema.
    pub encoded: u64,
}

struct Entry {
    compiled: Arc<Compiled>,
    subjects: Mutex<std::collections::BTreeSet<String>>,
    decoded: AtomicU64,
    encoded: AtomicU64,
}

/// One registry, shared by every converter of a pipeline.
pub struct SchemaRegistryClient {
    decoder: AvroDecoder,
    encoder: AvroEncoder,
    schemas: Mutex<BTreeMap<u32, Arc<Entry>>>,
    urls: String,
}

/// A resolved schema plus its counters.
#[derive(Clone)]
pub struct Resolved {
    entry: Arc<Entry>,
    /// SchemaRegistryClient id.
    pub id: u32,
}

impl Resolved {
    /// The compiled schema.
    pub fn compiled(&self) -> &Compiled {
        &self.entry.compiled
    }
    /// Counts one decode.
    pub fn count_decode(&self) {
        self.entry.decoded.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts one encode.
    pub fn count_encode(&self) {
        self.entry.encoded.fetch_add(1, Ordering::Relaxed);
    }
}

impl SchemaRegistryClient {
    /// Builds the client (no request is made).
    pub fn new(cfg: &SchemaRegistryConfig) -> Result<Self, FormatError> {
        let urls = cfg.url.list();
        let first = urls
            .first()
            .ok_or_else(|| FormatError::Config("schema_registry.url is empty".into()))?;
        let mut b = SrSettings::new_builder(first.trim_end_matches('/').to_owned());
        for u in &urls[1..] {
            b.add_url(u.trim_end_matches('/').to_owned());
        }
        if let Some(a) = &cfg.basic_auth {
            let password = a.password.reveal().map_err(|e| {
                FormatError::Config(format!("schema_registry.basic_auth.password: {e}"))
            })?;
            b.set_basic_authorization(&a.username, Some(&password));
        }
        if let Some(t) = &cfg.bearer_token {
            let token = t
                .reveal()
                .map_err(|e| FormatError::Config(format!("schema_registry.bearer_token: {e}")))?;
            b.set_token_authorization(&token);
        }
        b.set_timeout(cfg.timeout.into());
        // Built once to surface a TLS problem with its cause (schema_registry_converter's error
        // keeps only reqwest's top line), then again for the registry client.
        if let Err(e) = http_client(cfg)?.build() {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            return Err(FormatError::Config(format!(
                "cannot build the HTTPS client from the tls files: {text}"
            )));
        }
        let client = http_client(cfg)?;
        let settings = b.build_with(client).map_err(|e| {
            FormatError::Config(
                weir_core::redact::urls(&match e.cause {
                    Some(c) => format!("schema registry client: {}: {c}", e.error),
                    None => format!("schema registry client: {}", e.error),
                })
                .into_owned(),
            )
        })?;
        Ok(SchemaRegistryClient {
            decoder: AvroDecoder::new(settings.clone()),
            encoder: AvroEncoder::new(settings),
            schemas: Mutex::new(BTreeMap::new()),
            urls: urls
                .iter()
                .map(|u| weir_core::redact::url(u).into_owned())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Every schema used so far, by id.
    pub fn schemas(&self) -> Vec<SchemaInfo> {
        let map = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(id, e)| SchemaInfo {
                id: *id,
                subjects: e
                    .subjects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect(),
                name: e.compiled.name(),
                decoded: e.decoded.load(Ordering::Relaxed),
                encoded: e.encoded.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn known(&self, id: u32) -> Option<Arc<Entry>> {
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn remember(
        &self,
        id: u32,
        schema: &apache_avro::Schema,
        subject: Option<String>,
    ) -> Result<Resolved, FormatError> {
        let mut map = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get(&id) {
            if let Some(s) = subject {
                e.subjects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(s);
            }
            return Ok(Resolved {
                entry: e.clone(),
                id,
            });
        }
        let compiled = Compiled::compile(schema.clone()).map_err(FormatError::Schema)?;
        let entry = Arc::new(Entry {
            compiled: Arc::new(compiled),
            subjects: Mutex::new(subject.into_iter().collect()),
            decoded: AtomicU64::new(0),
            encoded: AtomicU64::new(0),
        });
        map.insert(id, entry.clone());
        Ok(Resolved { entry, id })
    }

    /// Adds a schema the caller already holds under its registry id (a pinned schema, a
    /// benchmark): messages with that id then decode without asking the registry.
    pub fn preload(
        &self,
        id: u32,
        schema: &apache_avro::Schema,
        subject: Option<String>,
    ) -> Result<(), FormatError> {
        self.remember(id, schema, subject).map(|_| ())
    }

    /// The writer's schema of a message by its id.
    pub async fn by_id(&self, id: u32) -> Result<Resolved, FormatError> {
        if let Some(entry) = self.known(id) {
            return Ok(Resolved { entry, id });
        }
        let s = self
            .decoder
            .get_schema(id)
            .await
            .map_err(|e| self.classify(e, &format!("schema id {id}")))?;
        self.remember(id, &s.parsed, s.subject.clone())
    }

    /// The schema to write with under a subject strategy (registering a supplied schema, or the
    /// subject's latest).
    pub async fn for_subject(
        &self,
        key: &str,
        strategy: SubjectNameStrategy,
    ) -> Result<Resolved, FormatError> {
        let subject = strategy.get_subject().ok();
        let s = self
            .encoder
            .get_schema_and_id(key, strategy)
            .await
            .map_err(|e| {
                self.classify(e, &format!("subject {}", subject.as_deref().unwrap_or(key)))
            })?;
        self.remember(s.id, &s.parsed, subject)
    }

    /// SchemaRegistryClient errors: unavailable (5xx, 429, 408, timeouts, connection) and refused
    /// credentials (401, 403) → retriable, and not cached; anything else (unknown id, rejected
    /// schema) → not retriable.
    fn classify(&self, e: SRCError, what: &str) -> FormatError {
        let text = match &e.cause {
            Some(c) => format!("{}: {c}", e.error),
            None => e.error.clone(),
        };
        // The client's messages quote the request URL, user-info and all.
        let text = weir_core::redact::urls(&text).into_owned();
        let unavailable = e.retriable
            || [
                "status 5",
                "status 429",
                "status 408",
                "error sending request",
                "timed out",
                "connect",
            ]
            .iter()
            .any(|s| text.contains(s));
        // Refused credentials are the operator's to fix (or a rotation in progress): the
        // records wait, as for an outage, instead of all going to the dead-letter queue.
        if text.contains("status 401") || text.contains("status 403") {
            self.decoder.remove_errors_from_cache();
            self.encoder.remove_errors_from_cache();
            return FormatError::Unavailable(format!(
                "schema registry {} refused the credentials for {what} (check schema_registry.basic_auth or bearer_token): {text}",
                self.urls
            ));
        }
        if unavailable {
            self.decoder.remove_errors_from_cache();
            self.encoder.remove_errors_from_cache();
            FormatError::Unavailable(format!(
                "schema registry {} unavailable for {what}: {text}",
                self.urls
            ))
        } else {
            FormatError::Schema(format!("schema registry {} for {what}: {text}", self.urls))
        }
    }
}

/// The HTTP client settings: custom CA and client certificate, applied as for the `http`
/// connectors (weir-http), so every HTTPS client of Weir reads TLS files one way.
fn http_client(cfg: &SchemaRegistryConfig) -> Result<reqwest::ClientBuilder, FormatError> {
    let client = reqwest::Client::builder();
    let Some(tls) = &cfg.tls else {
        return Ok(client);
    };
    let files = weir_http::HttpTls {
        ca_file: tls.ca_file.clone(),
        cert_file: tls.cert_file.clone(),
        key_file: tls.key_file.clone(),
        insecure_skip_verify: false,
    };
    weir_http::apply_tls(client, &files)
        .map_err(|e| FormatError::Config(format!("schema_registry.{e}")))
}

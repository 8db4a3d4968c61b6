//! `redis`: enriches records from Redis keys (`GET`) or hashes (`HGETALL`), with the `http`
//! enrichment's merge and drop semantics, one pipelined round trip per batch and a TTL cache.

mod config;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::{Map, Value as Json};
use weir_core::path::Segment;
use weir_core::template::{Template, TemplateContext};
use weir_core::{BuildContext, BuildError, Flow, PluginConfig, Record, Transform, TransformError};
use weir_redis::redis::{self, Value};
use weir_redis::{ConnectOptions, Failure, RedisClient};

use crate::enrich::{self, TtlCache};

pub use config::{LookupCache, LookupCommand, OnMiss, RedisTransformConfig, ValueFormat};

/// The compiled lookup.
pub struct RedisTransform {
    client: RedisClient,
    key: Template,
    command: LookupCommand,
    format: ValueFormat,
    target: Option<Vec<Segment>>,
    on_miss: OnMiss,
    cache: Option<TtlCache>,
    pipeline: String,
}

impl PluginConfig for RedisTransformConfig {
    const TYPE: &'static str = "redis";
    const SUMMARY: &'static str = "Enrich records from a Redis key or hash (GET, HGETALL), cached";
    const EXAMPLE: &'static str = r#"type: redis
url: redis://127.0.0.1:6379
key: tenant:<$.value.tenant>
command: hgetall
target: value.tenant
on_miss: keep
cache: { ttl: 1m, max_entries: 10000 }
"#;
    type Output = dyn Transform;

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        let client = RedisClient::new(&ConnectOptions {
            url: &self.url,
            username: self.username.as_deref(),
            password: self.password.as_ref(),
            database: i64::from(self.database),
            tls: self.tls.as_ref(),
            timeout: self.timeout.into(),
            connect_timeout: self.connect_timeout.into(),
        })
        .map_err(|e| BuildError::at(e.option, e.message))?;
        if self.key.is_empty() {
            return Err(BuildError::at("key", "must not be empty"));
        }
        let key = Template::compile(&self.key).map_err(|e| BuildError::at("key", e.to_string()))?;
        let target = enrich::target(self.target.as_deref(), "value.tenant")?;
        let cache = match self.cache {
            None => None,
            Some(c) if c.ttl.0.is_zero() => {
                return Err(BuildError::at("cache.ttl", "must be longer than 0s"));
            }
            Some(c) => Some(TtlCache::new(c.ttl.into(), c.max_entries)),
        };
        let format = self.value_format.unwrap_or(match self.command {
            LookupCommand::Get => ValueFormat::Json,
            LookupCommand::Hgetall => ValueFormat::String,
        });
        Ok(Box::new(RedisTransform {
            client,
            key,
            command: self.command,
            format,
            target,
            on_miss: self.on_miss,
            cache,
            pipeline: cx.pipeline.to_string(),
        }))
    }
}

weir_core::register_plugin!(RedisTransformConfig);

fn text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.clone().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

impl RedisTransform {
    fn decode(&self, key: &str, bytes: &[u8]) -> Result<Json, TransformError> {
        match self.format {
            ValueFormat::String => Ok(Json::String(String::from_utf8_lossy(bytes).into_owned())),
            ValueFormat::Json => serde_json::from_slice(bytes).map_err(|e| {
                TransformError::Fatal(format!(
                    "the value of Redis key {key:?} is not JSON ({e}); set value_format: string to take it as text"
                ))
            }),
        }
    }

    /// A reply as the answer: `Null` for a missing key, an object for a hash.
    fn answer(&self, key: &str, v: &Value) -> Result<Json, TransformError> {
        let unexpected =
            || TransformError::Fatal(format!("unexpected reply for Redis key {key:?}: {v:?}"));
        match (self.command, v) {
            (_, Value::Nil) => Ok(Json::Null),
            (LookupCommand::Get, v) => self.decode(key, &text(v).ok_or_else(unexpected)?),
            (LookupCommand::Hgetall, Value::Map(pairs)) => {
                let mut o = Map::new();
                for (k, f) in pairs {
                    let (k, f) = (
                        text(k).ok_or_else(unexpected)?,
                        text(f).ok_or_else(unexpected)?,
                    );
                    o.insert(
                        String::from_utf8_lossy(&k).into_owned(),
                        self.decode(key, &f)?,
                    );
                }
                Ok(Json::Object(o))
            }
            (LookupCommand::Hgetall, Value::Array(flat)) if flat.len() % 2 == 0 => {
                let mut o = Map::new();
                for kv in flat.chunks(2) {
                    let (k, f) = (
                        text(&kv[0]).ok_or_else(unexpected)?,
                        text(&kv[1]).ok_or_else(unexpected)?,
                    );
                    o.insert(
                        String::from_utf8_lossy(&k).into_owned(),
                        self.decode(key, &f)?,
                    );
                }
                Ok(Json::Object(o))
            }
            _ => Err(unexpected()),
        }
    }

    /// Reads these keys in one round trip: one answer (or error) per key.
    async fn fetch(&self, keys: &[&str]) -> Vec<Result<Json, TransformError>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for k in keys {
            pipe.cmd(match self.command {
                LookupCommand::Get => "GET",
                LookupCommand::Hgetall => "HGETALL",
            })
            .arg(*k);
        }
        let whole = |f: Failure| -> Vec<Result<Json, TransformError>> {
            keys.iter()
                .map(|_| {
                    Err(match &f {
                        Failure::Unavailable(m) => TransformError::Retriable(m.clone()),
                        other => TransformError::Fatal(other.message().to_owned()),
                    })
                })
                .collect()
        };
        let mut con = match self.client.connection().await {
            Ok(c) => c,
            Err(f) => return whole(f),
        };
        let replies = match pipe
            .query_async::<Vec<redis::RedisResult<Value>>>(&mut con)
            .await
        {
            Ok(r) if r.len() == keys.len() => r,
            Ok(r) => {
                return whole(Failure::Unavailable(format!(
                    "Redis at {} answered {} of {} lookups",
                    self.client.address(),
                    r.len(),
                    keys.len()
                )));
            }
            Err(e) => return whole(self.client.failure(&e).await),
        };
        keys.iter()
            .zip(replies)
            .map(|(k, r)| match r {
                Ok(v) => self.answer(k, &v),
                Err(e) => Err(match self.client.reply_failure(&e) {
                    Failure::Unavailable(m) => TransformError::Retriable(m),
                    other => TransformError::Fatal(format!("Redis key {k:?}: {}", other.message())),
                }),
            })
            .collect()
    }

    fn merge(&self, record: &mut Record, key: &str, answer: Json) -> Result<Flow, TransformError> {
        if enrich::is_empty(&answer) {
            return match self.on_miss {
                OnMiss::Drop => Ok(Flow::Drop),
                OnMiss::Keep => Ok(Flow::Keep),
                OnMiss::Fail => Err(TransformError::Fatal(format!(
                    "Redis key {key:?} is missing (or empty) and on_miss is fail"
                ))),
            };
        }
        enrich::merge(record, self.target.as_deref(), answer)
    }
}

#[async_trait]
impl Transform for RedisTransform {
    fn apply(&self, _: &mut Record) -> Result<Flow, TransformError> {
        Err(TransformError::Fatal(
            "the redis lookup runs batched (is_batched); apply_batch was not used".into(),
        ))
    }

    fn stage(&self) -> &'static str {
        "enrich"
    }

    fn is_batched(&self) -> bool {
        true
    }

    async fn apply_batch(&self, records: &mut [Record]) -> Vec<Result<Flow, TransformError>> {
        let cx = TemplateContext {
            pipeline: &self.pipeline,
        };
        let keys: Vec<Result<String, TransformError>> = records
            .iter_mut()
            .map(|r| match self.key.render_text(r, &cx) {
                Ok(k) if k.is_empty() => Err(TransformError::Fatal(
                    "the key template rendered an empty key".into(),
                )),
                Ok(k) => Ok(k),
                Err(e) => Err(TransformError::Fatal(format!(
                    "cannot render the key template: {e}"
                ))),
            })
            .collect();
        // Cached answers first; each other key is read once for the whole batch.
        let mut answers: HashMap<&str, Result<Json, TransformError>> = HashMap::new();
        let mut missing: Vec<&str> = Vec::new();
        for k in keys.iter().flatten() {
            if answers.contains_key(k.as_str()) || missing.contains(&k.as_str()) {
                continue;
            }
            match self.cache.as_ref().and_then(|c| c.get(k)) {
                Some(hit) => {
                    answers.insert(k, Ok(hit));
                }
                None => missing.push(k),
            }
        }
        if !missing.is_empty() {
            for (k, a) in missing.iter().zip(self.fetch(&missing).await) {
                if let (Some(c), Ok(j)) = (&self.cache, &a) {
                    c.put(k.to_string(), j.clone());
                }
                answers.insert(k, a);
            }
        }
        records
            .iter_mut()
            .zip(&keys)
            .map(|(r, k)| {
                let k = k.as_ref().map_err(Clone::clone)?;
                let answer = answers
                    .get(k.as_str())
                    .cloned()
                    .expect("every key was looked up")?;
                self.merge(r, k, answer)
            })
            .collect()
    }
}

//! `redis`: appends records to Redis streams with `XADD`, one pipelined round trip per batch,
//! each record acknowledged only once Redis answered its command.

mod config;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use weir_core::template::{Template, TemplateContext};
use weir_core::{BuildContext, BuildError, PluginConfig, Record, RecordOutcome, Sink, SinkError};
use weir_redis::redis::{self, Value};
use weir_redis::{ConnectOptions, Failure, RedisClient};

pub use config::RedisSinkConfig;

/// The compiled sink.
pub struct RedisSink {
    client: RedisClient,
    stream: Stream,
    fields: Fields,
    trim: Option<Trim>,
    exact_trim: bool,
    create_streams: bool,
    pipeline: String,
}

enum Stream {
    Fixed(String),
    Template(Template),
}

/// Entry field names; `None` leaves that part of the record out.
struct Fields {
    value: String,
    key: Option<String>,
    headers_prefix: Option<String>,
    topic: Option<String>,
    partition: Option<String>,
    offset: Option<String>,
}

enum Trim {
    MaxLen(u64),
    MaxAge(Duration),
}

fn named(field: String) -> Option<String> {
    (!field.is_empty()).then_some(field)
}

impl PluginConfig for RedisSinkConfig {
    const TYPE: &'static str = "redis";
    const SUMMARY: &'static str = "Append records to Redis streams (XADD), at least once";
    const EXAMPLE: &'static str = r#"type: redis
url: redis://127.0.0.1:6379
username: weir
password: "${REDIS_PASSWORD:-change-me}"
stream: events:<$.value.ccid>
max_len: 1000000
"#;
    type Output = dyn Sink;

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
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
        let template =
            Template::compile(&self.stream).map_err(|e| BuildError::at("stream", e.to_string()))?;
        let stream = if template.is_static() {
            if self.stream.is_empty() {
                return Err(BuildError::at("stream", "must not be empty"));
            }
            Stream::Fixed(self.stream)
        } else {
            Stream::Template(template)
        };
        if self.value_field.is_empty() {
            return Err(BuildError::at(
                "value_field",
                "must not be empty: the value is always written",
            ));
        }
        let trim = match (self.max_len, self.max_age) {
            (Some(_), Some(_)) => {
                return Err(BuildError::at(
                    "max_age",
                    "give `max_len` or `max_age`, not both (XADD trims by one of them)",
                ));
            }
            (Some(0), None) => {
                return Err(BuildError::at("max_len", "must be at least 1"));
            }
            (Some(n), None) => Some(Trim::MaxLen(n)),
            (None, Some(age)) if Duration::from(age).is_zero() => {
                return Err(BuildError::at("max_age", "must be longer than 0s"));
            }
            (None, Some(age)) => Some(Trim::MaxAge(age.into())),
            (None, None) => None,
        };
        Ok(Box::new(RedisSink {
            client,
            stream,
            fields: Fields {
                value: self.value_field,
                key: named(self.key_field),
                headers_prefix: named(self.headers_prefix),
                topic: named(self.topic_field),
                partition: named(self.partition_field),
                offset: named(self.offset_field),
            },
            trim,
            exact_trim: self.exact_trim,
            create_streams: self.create_streams,
            pipeline: cx.pipeline.to_string(),
        }))
    }
}

weir_core::register_plugin!(RedisSinkConfig);

impl RedisSink {
    fn stream_of(&self, record: &Record) -> Result<String, String> {
        let name = match &self.stream {
            Stream::Fixed(s) => return Ok(s.clone()),
            Stream::Template(t) => {
                // Templates may decode the value: render on a view, the batch stays shared.
                let mut view = record.clone();
                t.render_text(
                    &mut view,
                    &TemplateContext {
                        pipeline: &self.pipeline,
                    },
                )
                .map_err(|e| format!("cannot render the stream template: {e}"))?
            }
        };
        if name.is_empty() {
            return Err("the stream template rendered an empty name".into());
        }
        Ok(name)
    }

    /// `XADD stream [NOMKSTREAM] [MAXLEN|MINID ~|= threshold] * field value ...`
    fn xadd(&self, stream: &str, r: &Record, min_id: Option<u64>) -> redis::Cmd {
        let mut c = redis::cmd("XADD");
        c.arg(stream);
        if !self.create_streams {
            c.arg("NOMKSTREAM");
        }
        let how = if self.exact_trim { "=" } else { "~" };
        match (&self.trim, min_id) {
            (Some(Trim::MaxLen(n)), _) => {
                c.arg("MAXLEN").arg(how).arg(*n);
            }
            (Some(Trim::MaxAge(_)), Some(id)) => {
                c.arg("MINID").arg(how).arg(id);
            }
            _ => {}
        }
        c.arg("*");
        c.arg(&self.fields.value).arg(r.value.to_bytes().as_ref());
        if let (Some(f), Some(k)) = (&self.fields.key, &r.key) {
            c.arg(f).arg(k.as_ref());
        }
        if let Some(prefix) = &self.fields.headers_prefix {
            for h in &r.headers {
                c.arg(format!("{prefix}{}", h.name))
                    .arg(h.value.as_deref().unwrap_or_default());
            }
        }
        if let Some(o) = &r.meta.origin {
            if let Some(f) = &self.fields.topic {
                c.arg(f).arg(&*o.topic);
            }
            if let Some(f) = &self.fields.partition {
                c.arg(f).arg(o.partition);
            }
            if let Some(f) = &self.fields.offset {
                c.arg(f).arg(o.offset);
            }
        }
        c
    }

    /// The MINID threshold for `max_age`: entries whose id is older than now − max_age go.
    fn min_id(&self) -> Option<u64> {
        match self.trim {
            Some(Trim::MaxAge(age)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                Some(now.saturating_sub(age).as_millis() as u64)
            }
            _ => None,
        }
    }
}

fn outcome(f: Failure) -> RecordOutcome {
    match f {
        Failure::Unavailable(m) => RecordOutcome::Retriable(m),
        other => RecordOutcome::Fatal(other.message().to_owned()),
    }
}

/// Per-record outcomes in the runner's terms: all delivered is `Ok`, nothing delivered and
/// everything worth retrying retries the batch, anything else is per record.
fn summarize(outcomes: Vec<RecordOutcome>) -> Result<(), SinkError> {
    if outcomes.iter().all(|o| *o == RecordOutcome::Delivered) {
        return Ok(());
    }
    if outcomes
        .iter()
        .all(|o| matches!(o, RecordOutcome::Retriable(_)))
        && let Some(RecordOutcome::Retriable(m)) = outcomes.first()
    {
        return Err(SinkError::retriable(m.clone()));
    }
    Err(SinkError::partial(outcomes))
}

#[async_trait]
impl Sink for RedisSink {
    async fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        let min_id = self.min_id();
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut sent = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            match self.stream_of(r) {
                Ok(stream) => {
                    pipe.add_command(self.xadd(&stream, r, min_id));
                    sent.push(i);
                }
                Err(m) => outcomes[i] = Some(RecordOutcome::Fatal(m)),
            }
        }
        if !sent.is_empty() {
            let replies = match self.client.connection().await {
                Ok(mut con) => match pipe
                    .query_async::<Vec<redis::RedisResult<Value>>>(&mut con)
                    .await
                {
                    Ok(replies) if replies.len() == sent.len() => Ok(replies),
                    Ok(replies) => Err(Failure::Unavailable(format!(
                        "Redis at {} answered {} of {} commands",
                        self.client.address(),
                        replies.len(),
                        sent.len()
                    ))),
                    Err(e) => Err(self.client.failure(&e).await),
                },
                Err(f) => Err(f),
            };
            match replies {
                Ok(replies) => {
                    for (&i, reply) in sent.iter().zip(replies) {
                        outcomes[i] = Some(match reply {
                            Err(e) => outcome(self.client.reply_failure(&e)),
                            // NOMKSTREAM and no such stream: nothing was written.
                            Ok(Value::Nil) => RecordOutcome::Fatal(
                                "the stream does not exist and create_streams is false".into(),
                            ),
                            Ok(_) => RecordOutcome::Delivered,
                        });
                    }
                }
                // The whole round trip failed: no reply says which commands ran, so every
                // record is retried (a replayed entry repeats the record's offset fields).
                Err(f) => {
                    for &i in &sent {
                        outcomes[i] = Some(outcome(f.clone()));
                    }
                }
            }
        }
        summarize(
            outcomes
                .into_iter()
                .map(|o| o.expect("every record has an outcome"))
                .collect(),
        )
    }

    async fn healthcheck(&self) -> Result<(), SinkError> {
        let mut con = self
            .client
            .connection()
            .await
            .map_err(|f| SinkError::retriable(f.message()))?;
        match redis::cmd("PING").query_async::<Value>(&mut con).await {
            Ok(_) => Ok(()),
            Err(e) => Err(SinkError::retriable(
                self.client.failure(&e).await.message(),
            )),
        }
    }
}

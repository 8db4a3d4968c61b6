//! How a request failed: retriable (408, 429, 5xx, timeouts, connection errors; or the statuses
//! an operator lists) with the server's `Retry-After`, or rejected (other 4xx) with the status
//! and an excerpt of the response body for the dead-letter headers.

use std::time::{Duration, SystemTime};

/// The most of a response body kept for an error message.
const EXCERPT: usize = 512;

/// A request that did not get a 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying, no sooner than `retry_after` when the server said so.
    Retriable {
        /// What happened.
        message: String,
        /// From `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The server refused this request; retrying it will not help.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Status and body excerpt.
        message: String,
    },
}

impl Failure {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Retriable { message, .. } | Failure::Rejected { message, .. } => message,
        }
    }

    /// True for [`Failure::Retriable`].
    pub fn is_retriable(&self) -> bool {
        matches!(self, Failure::Retriable { .. })
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: &str) -> Self {
        match &mut self {
            Failure::Retriable { message, .. } | Failure::Rejected { message, .. } => {
                *message = format!("{what}: {message}");
            }
        }
        self
    }

    /// A request that got no response (timeout, connection refused, TLS failure). The URL is
    /// left out: its query may hold an API key.
    pub fn transport(e: reqwest::Error) -> Self {
        Failure::Retriable {
            message: chain(&e.without_url()),
            retry_after: None,
        }
    }

    /// Classifies a non-2xx response, reading an excerpt of its body.
    pub async fn from_response(resp: reqwest::Response, retry_statuses: &[u16]) -> Self {
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let body = resp.bytes().await.unwrap_or_default();
        let mut text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT)]).into_owned();
        if body.len() > EXCERPT {
            text.push('…');
        }
        let message = if text.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {}", text.trim())
        };
        let code = status.as_u16();
        let retriable = if retry_statuses.is_empty() {
            code == 408 || code == 429 || status.is_server_error()
        } else {
            retry_statuses.contains(&code)
        };
        if retriable {
            Failure::Retriable {
                message,
                retry_after: wait,
            }
        } else {
            Failure::Rejected {
                status: code,
                message,
            }
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at one hour.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(v)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    };
    Some(d.min(Duration::from_secs(3600)))
}

/// An error with its causes, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&in_a_minute).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(55) && d <= Duration::from_secs(60),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3600)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}

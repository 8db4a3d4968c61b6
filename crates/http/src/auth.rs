//! Applying authentication to requests, with the OAuth2 client-credentials token cache.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::ClientError;
use crate::config::{ApiKeyIn, HttpAuth};
use crate::outcome::Failure;

/// A token from an OAuth2 token endpoint.
#[derive(Debug, Clone)]
pub struct OAuth2Token {
    /// The access token.
    pub access_token: String,
    /// When to fetch a new one (a little before it expires).
    pub refresh_at: Instant,
}

pub(crate) struct OAuth2 {
    token_url: String,
    form: Vec<(String, String)>,
    client: reqwest::Client,
    token: Mutex<Option<OAuth2Token>>,
}

pub(crate) enum Auth {
    None,
    /// A whole `Authorization` header value.
    Header(String),
    ApiKey {
        name: String,
        value: String,
        location: ApiKeyIn,
    },
    OAuth2(Box<OAuth2>),
}

fn secret(s: &weir_core::config::Secret, what: &str) -> Result<String, ClientError> {
    s.reveal()
        .map_err(|e| ClientError(format!("auth.{what}: {e}")))
}

impl Auth {
    pub(crate) fn new(
        cfg: Option<&HttpAuth>,
        client: reqwest::Client,
    ) -> Result<Self, ClientError> {
        use base64::Engine as _;
        let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Ok(match cfg {
            None => Auth::None,
            Some(HttpAuth::Basic { username, password }) => Auth::Header(format!(
                "Basic {}",
                encode(format!("{username}:{}", secret(password, "password")?).as_bytes())
            )),
            Some(HttpAuth::Bearer { token }) => {
                Auth::Header(format!("Bearer {}", secret(token, "token")?))
            }
            Some(HttpAuth::ApiKey {
                name,
                value,
                location,
            }) => Auth::ApiKey {
                name: name.clone(),
                value: secret(value, "value")?,
                location: *location,
            },
            Some(HttpAuth::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scopes,
                extra,
            }) => {
                let mut form = vec![
                    ("grant_type".to_owned(), "client_credentials".to_owned()),
                    ("client_id".to_owned(), client_id.clone()),
                    (
                        "client_secret".to_owned(),
                        secret(client_secret, "client_secret")?,
                    ),
                ];
                if !scopes.is_empty() {
                    form.push(("scope".to_owned(), scopes.join(" ")));
                }
                form.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                Auth::OAuth2(Box::new(OAuth2 {
                    token_url: token_url.clone(),
                    form,
                    client,
                    token: Mutex::new(None),
                }))
            }
        })
    }

    pub(crate) fn refreshable(&self) -> bool {
        matches!(self, Auth::OAuth2(_))
    }

    pub(crate) async fn invalidate(&self) {
        if let Auth::OAuth2(o) = self {
            *o.token.lock().await = None;
        }
    }

    pub(crate) async fn apply(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        Ok(match self {
            Auth::None => req,
            Auth::Header(v) => req.header(reqwest::header::AUTHORIZATION, v),
            Auth::ApiKey {
                name,
                value,
                location: ApiKeyIn::Header,
            } => req.header(name.as_str(), value),
            Auth::ApiKey {
                name,
                value,
                location: ApiKeyIn::Query,
            } => req.query(&[(name, value)]),
            Auth::OAuth2(o) => req.bearer_auth(o.token().await?),
        })
    }
}

impl OAuth2 {
    /// The cached token, or a new one. One fetch at a time: concurrent requests wait for it.
    async fn token(&self) -> Result<String, Failure> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.access_token.clone());
        }
        let resp = self
            .client
            .post(&self.token_url)
            .form(&self.form)
            .send()
            .await
            .map_err(|e| Failure::transport(e).context("the OAuth2 token request"))?;
        if !resp.status().is_success() {
            // A refused client is retried like an outage (credentials get fixed or rotated),
            // never dead-letters the records.
            let f = Failure::from_response(resp, &[]).await;
            return Err(Failure::Retriable {
                message: format!("the OAuth2 token endpoint refused: {}", f.message()),
                retry_after: None,
            });
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| Failure::Retriable {
            message: format!("the OAuth2 token response is not JSON: {e}"),
            retry_after: None,
        })?;
        let access = body["access_token"]
            .as_str()
            .ok_or_else(|| Failure::Retriable {
                message: "the OAuth2 token response has no access_token".into(),
                retry_after: None,
            })?
            .to_owned();
        // Refresh 30 s (or a tenth of the lifetime, if shorter) before it expires.
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(300));
        let margin = Duration::from_secs(30).min(lifetime / 10);
        *guard = Some(OAuth2Token {
            access_token: access.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(access)
    }
}

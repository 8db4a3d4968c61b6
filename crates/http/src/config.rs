//! Authentication and TLS options, shared by the `http` sink and enrichment.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use weir_core::config::Secret;

use crate::ClientError;

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyIn {
    /// A request header named `name`.
    #[default]
    Header,
    /// A query parameter named `name`.
    Query,
}

/// How requests authenticate. Secrets take `${ENV}` or `file:/path` references and never appear
/// in logs or errors.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// `Authorization: Basic …`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// An API key in a named header (`x-api-key`) or query parameter.
    ApiKey {
        /// Header or query parameter name.
        name: String,
        /// The key.
        value: Secret,
        /// `header` (default) or `query`.
        #[serde(default, rename = "in")]
        location: ApiKeyIn,
    },
    /// OAuth2 client credentials: a token from `token_url`, cached until it expires and fetched
    /// again once when the API answers 401.
    Oauth2 {
        /// The token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
        /// Scopes to ask for.
        #[serde(default)]
        scopes: Vec<String>,
        /// Extra form fields for the token request (`audience`, `resource`).
        #[serde(default)]
        extra: std::collections::BTreeMap<String, String>,
    },
}

/// TLS options. The system's roots verify servers unless `ca_file` is given; verification is
/// never off unless `insecure_skip_verify: true`, which logs a warning at start-up.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    /// PEM file of the certificate authorities to trust (instead of the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. For tests against throwaway servers only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError(format!("tls.{what} {}: {e}", path.display())))
}

/// Applies TLS files to a client builder: `ca_file` replaces the system roots, `cert_file` and
/// `key_file` present a client certificate. Errors name the option (`tls.ca_file ...`).
pub fn apply_tls(
    mut b: reqwest::ClientBuilder,
    t: &HttpTls,
) -> Result<reqwest::ClientBuilder, ClientError> {
    if let Some(ca) = &t.ca_file {
        let pem = read(ca, "ca_file")?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ClientError(format!("tls.ca_file {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(ClientError(format!(
                "tls.ca_file {}: no PEM certificate in it",
                ca.display()
            )));
        }
        b = b.tls_certs_only(certs);
    }
    match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => {
            let mut pem = read(c, "cert_file")?;
            pem.extend(read(k, "key_file")?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| ClientError(format!("tls client certificate: {e}")))?;
            b = b.identity(id);
        }
        (None, None) => {}
        _ => {
            return Err(ClientError(
                "tls: give both cert_file and key_file for mutual TLS".into(),
            ));
        }
    }
    if t.insecure_skip_verify {
        tracing::warn!(
            "tls.insecure_skip_verify is on: server certificates are NOT verified; anyone on the path can read and change this traffic"
        );
        b = b.tls_danger_accept_invalid_certs(true);
    }
    Ok(b)
}

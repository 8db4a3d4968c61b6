//! JWT authentication of SSE clients.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value as Json;
use weir_core::BuildError;

use super::config::{JwtAlgorithm, SseAuth};

enum Keys {
    One(DecodingKey),
    /// By `kid`; a key set with one key also serves tokens without a `kid`.
    Set(HashMap<String, (DecodingKey, Option<Algorithm>)>),
}

/// A compiled `auth:` block.
pub struct Authenticator {
    keys: Keys,
    algorithms: Vec<Algorithm>,
    tenant_claim: Option<String>,
    /// The cookie the token may come in.
    pub cookie: String,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
}

/// Who a valid token says the client is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The tenant the client is restricted to.
    pub tenant: Option<String>,
    /// When the token expires.
    pub expires: SystemTime,
}

fn alg(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
    }
}

fn read(path: &std::path::Path, option: &str) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path)
        .map_err(|e| BuildError::at(option, format!("cannot read {}: {e}", path.display())))
}

impl Authenticator {
    /// Compiles the options (keys are read now, so a bad file fails the build).
    pub fn new(cfg: &SseAuth) -> Result<Self, BuildError> {
        let given = [
            cfg.hs256_secret.is_some(),
            cfg.public_key_file.is_some(),
            cfg.jwks_file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(BuildError::at(
                "auth",
                "give exactly one of hs256_secret, public_key_file, jwks_file",
            ));
        }
        let mut defaults = Vec::new();
        let keys = if let Some(secret) = &cfg.hs256_secret {
            let s = secret
                .reveal()
                .map_err(|e| BuildError::at("auth.hs256_secret", e.to_string()))?;
            if s.len() < 32 {
                return Err(BuildError::at(
                    "auth.hs256_secret",
                    format!(
                        "an HS256 secret needs at least 32 bytes (this one has {}): a short one can be guessed offline from any token",
                        s.len()
                    ),
                ));
            }
            defaults.push(Algorithm::HS256);
            Keys::One(DecodingKey::from_secret(s.as_bytes()))
        } else if let Some(path) = &cfg.public_key_file {
            let pem = read(path, "auth.public_key_file")?;
            if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                defaults.push(Algorithm::RS256);
                Keys::One(k)
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                defaults.push(Algorithm::ES256);
                Keys::One(k)
            } else {
                return Err(BuildError::at(
                    "auth.public_key_file",
                    format!("{} is not a PEM RSA or EC public key", path.display()),
                ));
            }
        } else {
            let path = cfg.jwks_file.as_ref().expect("counted above");
            let text = read(path, "auth.jwks_file")?;
            let set: JwkSet = serde_json::from_slice(&text).map_err(|e| {
                BuildError::at(
                    "auth.jwks_file",
                    format!("{} is not a JSON Web Key Set: {e}", path.display()),
                )
            })?;
            let mut keys = HashMap::new();
            for (i, jwk) in set.keys.iter().enumerate() {
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| BuildError::at("auth.jwks_file", format!("key {i}: {e}")))?;
                let a = jwk
                    .common
                    .key_algorithm
                    .and_then(|k| k.to_string().parse::<Algorithm>().ok());
                if let Some(a) = a
                    && !defaults.contains(&a)
                {
                    defaults.push(a);
                }
                let kid = jwk.common.key_id.clone().unwrap_or_default();
                keys.insert(kid, (key, a));
            }
            if keys.is_empty() {
                return Err(BuildError::at("auth.jwks_file", "the key set has no keys"));
            }
            if defaults.is_empty() {
                defaults = vec![Algorithm::RS256, Algorithm::ES256];
            }
            Keys::Set(keys)
        };
        let algorithms = if cfg.algorithms.is_empty() {
            defaults
        } else {
            cfg.algorithms.iter().copied().map(alg).collect()
        };
        let secret_key = matches!(keys, Keys::One(_)) && cfg.hs256_secret.is_some();
        if secret_key != algorithms.contains(&Algorithm::HS256)
            || (secret_key && algorithms.len() > 1)
        {
            return Err(BuildError::at(
                "auth.algorithms",
                "HS256 goes with hs256_secret only, RS256/ES256 with a public key or key set",
            ));
        }
        Ok(Authenticator {
            keys,
            algorithms,
            tenant_claim: cfg.tenant_claim.clone(),
            cookie: cfg.cookie.clone(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway.0,
        })
    }

    /// Checks a token; the error is what the client is told (never the token).
    pub fn check(&self, token: &str) -> Result<Identity, String> {
        let header = decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(format!(
                "tokens signed with {:?} are not accepted",
                header.alg
            ));
        }
        let key = match &self.keys {
            Keys::One(k) => k,
            Keys::Set(set) => {
                let found = match &header.kid {
                    Some(kid) => set.get(kid),
                    None if set.len() == 1 => set.values().next(),
                    None => None,
                };
                match found {
                    Some((k, a)) if a.is_none_or(|a| a == header.alg) => k,
                    Some(_) => return Err("the key named by kid is for another algorithm".into()),
                    None => return Err("no key in the key set matches the token's kid".into()),
                }
            }
        };
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = self.leeway.as_secs();
        v.set_required_spec_claims(&["exp"]);
        v.validate_nbf = true;
        if let Some(i) = &self.issuer {
            v.set_issuer(&[i]);
        }
        match &self.audience {
            Some(a) => v.set_audience(&[a]),
            None => v.validate_aud = false,
        }
        let data = decode::<Json>(token, key, &v).map_err(|e| format!("invalid token: {e}"))?;
        let exp = data.claims.get("exp").and_then(Json::as_u64).unwrap_or(0);
        let tenant = match &self.tenant_claim {
            None => None,
            Some(c) => match data.claims.get(c) {
                Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Json::Number(n)) => Some(n.to_string()),
                _ => return Err(format!("the token has no `{c}` claim (the tenant)")),
            },
        };
        Ok(Identity {
            tenant,
            expires: UNIX_EPOCH + Duration::from_secs(exp) + self.leeway,
        })
    }
}

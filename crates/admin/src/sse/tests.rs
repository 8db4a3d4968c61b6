//! Unit tests of the sse sink's ring, ids and resume rules (the HTTP side is tested end to end
//! in crates/cli/tests/sse.rs with curl, Python clients and a browser).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use weir_core::Record;

use super::hub::{Draft, Settings, Start, Stream, Subscription};
use super::id::{self, EventId};
use weir_transforms::filter::FilterTransform;

fn settings(max_events: usize, queue: usize) -> Settings {
    Settings {
        auth: None,
        cors_origins: vec![],
        heartbeat: Duration::from_secs(15),
        retry: Duration::from_secs(3),
        client_queue_bytes: queue,
        max_clients: 10,
        ring_max_events: max_events,
        ring_max_bytes: usize::MAX,
    }
}

fn stream(max_events: usize) -> Arc<Stream> {
    Arc::new(Stream::new("t", "p", settings(max_events, 1 << 20)))
}

fn draft(partition: i32, offset: i64, tenant: Option<&str>, body: &str) -> Draft {
    let view = Record::from_bytes(body.as_bytes().to_vec());
    Draft {
        position: Some(((id::topic_hash("orders"), partition), offset)),
        time_ms: 1_000 + offset,
        tenant: tenant.map(Arc::from),
        event: "orders".into(),
        data: body.into(),
        view,
    }
}

fn drain(sub: &mut Subscription) -> Vec<String> {
    let mut out: Vec<String> = std::mem::take(&mut sub.backlog)
        .iter()
        .map(|e| String::from_utf8_lossy(&e.frame).into_owned())
        .collect();
    while let Ok(e) = sub.rx.try_recv() {
        // As the HTTP feed does when it takes an event.
        sub.queued
            .fetch_sub(e.frame.len(), std::sync::atomic::Ordering::AcqRel);
        out.push(String::from_utf8_lossy(&e.frame).into_owned());
    }
    out
}

fn data_of(frames: &[String]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            f.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn id_of(frame: &str) -> String {
    frame
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_owned()
}

#[test]
fn ids_round_trip_and_reject_what_they_did_not_write() {
    let mut v = BTreeMap::new();
    v.insert((7, 0), 0);
    v.insert((7, 3), 1_234_567_890_123);
    v.insert((u32::MAX - 1, -5), -1);
    let text = id::encode(42, 9, &v);
    assert!(
        text.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_eq!(
        id::decode(&text),
        Some(EventId {
            epoch: 42,
            seq: 9,
            vector: v
        })
    );
    for bad in ["", "!!", "AAAA", &format!("{text}A"), "aGVsbG8"] {
        assert_eq!(id::decode(bad), None, "{bad}");
    }
}

#[test]
fn a_client_resuming_by_id_gets_every_later_event_once_and_in_order() {
    let s = stream(100);
    s.publish(
        (0..5)
            .map(|i| draft(0, i, None, &format!("{{\"n\":{i}}}")))
            .collect(),
    );
    let mut first = s.subscribe(Start::Since(1_000), None, None).unwrap();
    let seen = drain(&mut first);
    assert_eq!(data_of(&seen).len(), 5);
    let last = id_of(&seen[2]);
    s.publish(
        (5..8)
            .map(|i| draft(0, i, None, &format!("{{\"n\":{i}}}")))
            .collect(),
    );
    let mut again = s
        .subscribe(Start::After(id::decode(&last)), None, None)
        .unwrap();
    assert!(again.reset.is_none());
    assert_eq!(
        data_of(&drain(&mut again)),
        [
            "{\"n\":3}",
            "{\"n\":4}",
            "{\"n\":5}",
            "{\"n\":6}",
            "{\"n\":7}"
        ]
    );
    // Live events after the subscription arrive exactly once, after the backlog.
    s.publish(vec![draft(0, 8, None, "{\"n\":8}")]);
    assert_eq!(data_of(&drain(&mut again)), ["{\"n\":8}"]);
}

#[test]
fn an_id_older_than_the_ring_gets_an_explicit_reset_never_a_silent_gap() {
    let s = stream(3);
    s.publish(vec![draft(0, 0, None, "{\"n\":0}")]);
    let mut sub = s.subscribe(Start::Since(1_000), None, None).unwrap();
    let old = id_of(&drain(&mut sub)[0]);
    s.publish(
        (1..10)
            .map(|i| draft(0, i, None, &format!("{{\"n\":{i}}}")))
            .collect(),
    );
    let late = s
        .subscribe(Start::After(id::decode(&old)), None, None)
        .unwrap();
    let reset = String::from_utf8(late.reset.clone().unwrap().to_vec()).unwrap();
    assert!(reset.contains("event: reset\n"), "{reset}");
    assert!(reset.contains("\"reason\":\"position_gone\""), "{reset}");
    assert!(
        late.backlog.is_empty(),
        "after a reset the client continues live"
    );
    // The reset carries the newest id, so a reconnect after it does not reset again.
    let after_reset = id_of(&reset);
    let mut next = s
        .subscribe(Start::After(id::decode(&after_reset)), None, None)
        .unwrap();
    assert!(next.reset.is_none());
    assert!(drain(&mut next).is_empty());
    let mut garbage = s.subscribe(Start::After(None), None, None).unwrap();
    let g = String::from_utf8(garbage.reset.take().unwrap().to_vec()).unwrap();
    assert!(g.contains("\"reason\":\"unknown_id\""), "{g}");
}

#[test]
fn after_a_restart_the_position_vector_resumes_where_the_source_did() {
    // The old process delivered offsets 0..=4 of partition 0 and 0..=2 of partition 1.
    let mut v = BTreeMap::new();
    v.insert((id::topic_hash("orders"), 0), 4);
    v.insert((id::topic_hash("orders"), 1), 2);
    let old = id::encode(1, 7, &v);
    // The new one resumes from the committed offsets: 5 and 3.
    let s = stream(100);
    s.publish(vec![
        draft(0, 5, None, "{\"p0\":5}"),
        draft(1, 3, None, "{\"p1\":3}"),
        draft(0, 6, None, "{\"p0\":6}"),
    ]);
    let mut sub = s
        .subscribe(Start::After(id::decode(&old)), None, None)
        .unwrap();
    assert!(sub.reset.is_none());
    assert_eq!(data_of(&drain(&mut sub)).len(), 3);
    // A client that had seen only up to offset 2 of partition 0 missed 3 and 4: reset.
    v.insert((id::topic_hash("orders"), 0), 2);
    let behind = id::encode(1, 3, &v);
    let gone = s
        .subscribe(Start::After(id::decode(&behind)), None, None)
        .unwrap();
    assert!(gone.reset.is_some());
}

#[test]
fn since_starts_inside_the_ring_and_resets_before_it() {
    let s = stream(4);
    s.publish(
        (0..10)
            .map(|i| draft(0, i, None, &format!("{{\"n\":{i}}}")))
            .collect(),
    );
    // Events 6..=9 are held, with times 1006..=1009.
    let mut sub = s.subscribe(Start::Since(1_008), None, None).unwrap();
    assert_eq!(data_of(&drain(&mut sub)), ["{\"n\":8}", "{\"n\":9}"]);
    let before = s.subscribe(Start::Since(1_002), None, None).unwrap();
    assert!(before.reset.is_some());
}

#[test]
fn a_tenant_restricted_client_never_sees_another_tenants_event_whatever_its_filter() {
    let s = stream(100);
    let asks_for_b =
        FilterTransform::new(&[serde_json::json!({"value": {"ccid": ["b"]}})]).unwrap();
    let mut a = s
        .subscribe(
            Start::Live,
            Some(Arc::from("a")),
            Some(Arc::new(asks_for_b)),
        )
        .unwrap();
    let mut a_all = s
        .subscribe(Start::Live, Some(Arc::from("a")), None)
        .unwrap();
    let mut anyone = s.subscribe(Start::Live, None, None).unwrap();
    s.publish(vec![
        draft(0, 0, Some("a"), "{\"ccid\":\"a\",\"n\":0}"),
        draft(0, 1, Some("b"), "{\"ccid\":\"b\",\"n\":1}"),
        draft(0, 2, None, "{\"n\":2}"),
        draft(0, 3, Some("a"), "{\"ccid\":\"a\",\"n\":3}"),
    ]);
    assert!(
        drain(&mut a).is_empty(),
        "its filter asks for b, its token says a"
    );
    assert_eq!(
        data_of(&drain(&mut a_all)),
        ["{\"ccid\":\"a\",\"n\":0}", "{\"ccid\":\"a\",\"n\":3}"]
    );
    assert_eq!(drain(&mut anyone).len(), 4);
    // The backlog follows the same rule.
    let mut late = s
        .subscribe(Start::Since(1_000), Some(Arc::from("b")), None)
        .unwrap();
    assert_eq!(data_of(&drain(&mut late)), ["{\"ccid\":\"b\",\"n\":1}"]);
}

#[test]
fn a_client_that_falls_behind_is_disconnected_and_the_others_keep_receiving() {
    let s = Arc::new(Stream::new("slow", "p", settings(1000, 600)));
    let stuck = s.subscribe(Start::Live, None, None).unwrap();
    let mut reader = s.subscribe(Start::Live, None, None).unwrap();
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(100));
    let mut got = 0;
    for i in 0..50 {
        s.publish(vec![draft(0, i, None, &body)]);
        got += drain(&mut reader).len();
    }
    assert_eq!(got, 50, "the reading client got every event");
    let mut stuck = stuck;
    // Its queue held what fit in 600 bytes, then it was dropped: the channel is closed.
    let mut queued = 0;
    loop {
        match stuck.rx.try_recv() {
            Ok(_) => queued += 1,
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                panic!("the stuck client is still connected after {queued} events")
            }
        }
    }
    assert!((1..50).contains(&queued), "{queued}");
}

#[test]
fn data_with_line_breaks_is_sent_as_several_data_lines() {
    let s = stream(10);
    let mut sub = s.subscribe(Start::Live, None, None).unwrap();
    let mut d = draft(0, 0, None, "{}");
    d.data = "{\n  \"a\": 1\r\n}".into();
    s.publish(vec![d]);
    let f = &drain(&mut sub)[0];
    assert!(
        f.ends_with("data: {\ndata:   \"a\": 1\ndata: }\n\n"),
        "{f:?}"
    );
}

mod jwt {
    use std::path::Path;
    use std::process::Command;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use serde_json::json;
    use weir_core::HumanDuration;
    use weir_core::config::Secret;

    use super::super::auth::Authenticator;
    use super::super::config::{JwtAlgorithm, SseAuth};

    fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl is needed (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn auth() -> SseAuth {
        SseAuth {
            hs256_secret: None,
            public_key_file: None,
            jwks_file: None,
            algorithms: vec![],
            tenant_claim: Some("ccid".into()),
            cookie: "weir_token".into(),
            issuer: None,
            audience: None,
            leeway: HumanDuration(std::time::Duration::ZERO),
        }
    }

    fn exp() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60
    }

    fn sign(
        alg: Algorithm,
        kid: Option<&str>,
        key: &EncodingKey,
        claims: serde_json::Value,
    ) -> String {
        let mut h = Header::new(alg);
        h.kid = kid.map(str::to_owned);
        encode(&h, &claims, key).unwrap()
    }

    #[test]
    fn rs256_and_es256_public_keys_and_a_jwks_file_verify_their_tokens_and_only_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(d, &["genrsa", "-out", "rsa.key", "2048"]);
        openssl(d, &["rsa", "-in", "rsa.key", "-pubout", "-out", "rsa.pub"]);
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec.key",
            ],
        );
        openssl(
            d,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "ec.key", "-out", "ec8.key",
            ],
        );
        openssl(d, &["ec", "-in", "ec.key", "-pubout", "-out", "ec.pub"]);
        let rsa = EncodingKey::from_rsa_pem(&std::fs::read(d.join("rsa.key")).unwrap()).unwrap();
        let ec = EncodingKey::from_ec_pem(&std::fs::read(d.join("ec8.key")).unwrap()).unwrap();
        let claims = json!({"ccid": "c-9", "exp": exp()});

        let mut a = auth();
        a.public_key_file = Some(d.join("rsa.pub"));
        let rs = Authenticator::new(&a).unwrap();
        let id = rs
            .check(&sign(Algorithm::RS256, None, &rsa, claims.clone()))
            .unwrap();
        assert_eq!(id.tenant.as_deref(), Some("c-9"));
        // An ES256 token, or an HS256 one signed with the public key as its secret (the classic
        // algorithm-confusion attack), is refused by an RSA-key stream.
        assert!(
            rs.check(&sign(Algorithm::ES256, None, &ec, claims.clone()))
                .is_err()
        );
        let pem = std::fs::read(d.join("rsa.pub")).unwrap();
        let confused = sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(&pem),
            claims.clone(),
        );
        assert!(rs.check(&confused).unwrap_err().contains("not accepted"));

        let mut a = auth();
        a.public_key_file = Some(d.join("ec.pub"));
        let es = Authenticator::new(&a).unwrap();
        assert_eq!(
            es.check(&sign(Algorithm::ES256, None, &ec, claims.clone()))
                .unwrap()
                .tenant
                .as_deref(),
            Some("c-9")
        );
        assert!(
            es.check(&sign(Algorithm::RS256, None, &rsa, claims.clone()))
                .is_err()
        );

        // The RSA key as a JWKS: modulus and exponent from openssl, base64url.
        let text = String::from_utf8(openssl(
            d,
            &["rsa", "-pubin", "-in", "rsa.pub", "-noout", "-modulus"],
        ))
        .unwrap();
        let hex = text.trim().strip_prefix("Modulus=").unwrap();
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                                    "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"}]});
        std::fs::write(d.join("jwks.json"), jwks.to_string()).unwrap();
        let mut a = auth();
        a.jwks_file = Some(d.join("jwks.json"));
        let set = Authenticator::new(&a).unwrap();
        assert!(
            set.check(&sign(Algorithm::RS256, Some("k1"), &rsa, claims.clone()))
                .is_ok()
        );
        assert!(
            set.check(&sign(Algorithm::RS256, None, &rsa, claims.clone()))
                .is_ok(),
            "one key serves tokens without kid"
        );
        assert!(
            set.check(&sign(Algorithm::RS256, Some("k2"), &rsa, claims.clone()))
                .unwrap_err()
                .contains("kid")
        );
        // Signed by another RSA key: refused.
        openssl(d, &["genrsa", "-out", "other.key", "2048"]);
        let other =
            EncodingKey::from_rsa_pem(&std::fs::read(d.join("other.key")).unwrap()).unwrap();
        assert!(
            set.check(&sign(Algorithm::RS256, Some("k1"), &other, claims))
                .is_err()
        );
    }

    #[test]
    fn issuer_audience_and_bad_configurations() {
        let secret = "s".repeat(32);
        let key = EncodingKey::from_secret(secret.as_bytes());
        let mut a = auth();
        a.hs256_secret = Some(Secret::new(secret.clone()));
        a.issuer = Some("https://id.example".into());
        a.audience = Some("gateway".into());
        let v = Authenticator::new(&a).unwrap();
        let ok = json!({"ccid": "a", "exp": exp(), "iss": "https://id.example", "aud": "gateway"});
        assert!(v.check(&sign(Algorithm::HS256, None, &key, ok)).is_ok());
        let wrong_iss = json!({"ccid": "a", "exp": exp(), "iss": "https://evil", "aud": "gateway"});
        assert!(
            v.check(&sign(Algorithm::HS256, None, &key, wrong_iss))
                .is_err()
        );
        let wrong_aud =
            json!({"ccid": "a", "exp": exp(), "iss": "https://id.example", "aud": "other"});
        assert!(
            v.check(&sign(Algorithm::HS256, None, &key, wrong_aud))
                .is_err()
        );
        let numeric =
            json!({"ccid": 42, "exp": exp(), "iss": "https://id.example", "aud": "gateway"});
        assert_eq!(
            v.check(&sign(Algorithm::HS256, None, &key, numeric))
                .unwrap()
                .tenant
                .as_deref(),
            Some("42")
        );

        let mut a = auth();
        a.hs256_secret = Some(Secret::new(secret));
        a.algorithms = vec![JwtAlgorithm::RS256];
        assert!(
            Authenticator::new(&a).is_err(),
            "HS256 secret with RS256 only"
        );
        let mut a = auth();
        a.jwks_file = Some("/nonexistent/jwks.json".into());
        assert!(Authenticator::new(&a).is_err());
    }
}

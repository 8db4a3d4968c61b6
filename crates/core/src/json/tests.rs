use proptest::prelude::*;
use serde_json::Value as Json;

use super::*;
use crate::path::{FieldPath, get};

/// serde_json's verdict, which the scanner must reproduce (it is what the tree path uses).
fn serde_accepts(doc: &[u8]) -> bool {
    serde_json::from_slice::<Json>(doc).is_ok()
}

fn scanner_accepts(doc: &[u8]) -> Option<bool> {
    match validate(doc) {
        Ok(()) => Some(true),
        Err(ScanError::Invalid) => Some(false),
        Err(ScanError::Unsupported) => None,
    }
}

#[test]
fn malformed_documents_are_refused_as_serde_json_refuses_them() {
    let cases: &[&[u8]] = &[
        b"",
        b" ",
        b"{",
        b"}",
        b"{\"a\":1,}",
        b"[1,]",
        b"[1 2]",
        b"{\"a\" 1}",
        b"{a:1}",
        b"{\"a\":1}x",
        b"{\"a\":1} {}",
        b"01",
        b"-",
        b"1.",
        b".5",
        b"+1",
        b"1e",
        b"1e+",
        b"-01",
        b"tru",
        b"nul",
        b"True",
        b"\"abc",
        b"\"a\x01b\"",
        b"\"tab\there\"",
        b"\"\\x\"",
        b"\"\\u12\"",
        b"\"\\u12G4\"",
        b"\"\\ud800\"",
        b"\"\\ud800x\"",
        b"\"\\ud800\\n\"",
        b"\"\\ud800\\ud800\"",
        b"\"\\udc00\"",
        b"\"\xff\"",
        b"\"\xc3\"",
        b"\"\xc3\x28\"",
        b"\"\xe2\x82\"",
        b"\"\xed\xa0\x80\"",
        b"\"\xf4\x90\x80\x80\"",
        b"\"\xc0\xaf\"",
        b"{\"\xff\":1}",
        b"\xef\xbb\xbf{}",
        b"[1]\x00",
        b"\x0c[]",
        b"NaN",
        b"Infinity",
        b"[-]",
        b"{\"a\":}",
        b"{,}",
        b"[,1]",
    ];
    for doc in cases {
        assert_eq!(
            scanner_accepts(doc),
            Some(serde_accepts(doc)),
            "{:?}",
            String::from_utf8_lossy(doc)
        );
        assert!(
            !serde_accepts(doc),
            "the case list holds only bad documents"
        );
    }
    let good: &[&[u8]] = &[
        b"0",
        b"-0",
        b"-0.0e-0",
        b"1E+999999",
        b"123456789012345678901234567890",
        b" \t\r\n{ \"a\" : [ ] , \"b\":{}}\n",
        b"\"\\ud83d\\ude00 \\u00e9 \\/ \\\" \\\\ \\b\\f\\n\\r\\t\"",
        "\"Zoë Ærø €𝄞\"".as_bytes(),
        b"\"\x7f\"",
        b"{\"a\":1,\"a\":2}",
        b"null",
    ];
    for doc in good {
        assert_eq!(
            scanner_accepts(doc),
            Some(true),
            "{:?}",
            String::from_utf8_lossy(doc)
        );
        assert!(serde_accepts(doc));
    }
}

#[test]
fn nesting_is_limited_where_serde_json_limits_it() {
    for depth in [1usize, 126, 127, 128, 129, 5000] {
        for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
            let doc = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            assert_eq!(
                scanner_accepts(doc.as_bytes()),
                Some(serde_accepts(doc.as_bytes())),
                "depth {depth} {open}"
            );
        }
    }
    assert_eq!(
        scanner_accepts(format!("{}1{}", "[".repeat(127), "]".repeat(127)).as_bytes()),
        Some(true)
    );
    assert_eq!(
        scanner_accepts(format!("{}1{}", "[".repeat(128), "]".repeat(128)).as_bytes()),
        Some(false)
    );
}

#[test]
fn serde_json_private_keys_are_left_to_serde_json() {
    for doc in [
        &br#"{"$serde_json::private::Number":"12"}"#[..],
        br#"{"$serde_json::private::Number":"x"}"#,
        br#"{"\u0024serde_json::private::Number":"x"}"#,
        br#"{"$serde_json::private::RawValue":"1"}"#,
    ] {
        assert_eq!(validate(doc), Err(ScanError::Unsupported));
    }
    // Not first: an ordinary key.
    assert_eq!(
        validate(br#"{"a":1,"$serde_json::private::Number":"x"}"#),
        Ok(())
    );
}

fn keys(path: &str) -> Vec<String> {
    FieldPath::parse(path)
        .unwrap()
        .segments
        .iter()
        .map(|s| match s {
            crate::path::Segment::Key(k) => k.clone(),
            _ => unreachable!(),
        })
        .collect()
}

#[test]
fn slots_hold_the_last_duplicate_and_member_boundaries() {
    let doc = br#"{ "a" : {"x":1}, "b":"s" ,"a":{"y":2} }"#;
    let mut w = Wanted::new();
    let a = w.path(["a"]);
    let ax = w.path(["a", "x"]);
    let ay = w.path(["a", "y"]);
    let b = w.path(["b"]);
    let mut slots = vec![Slot::NONE; w.len()];
    let info = scan(doc, &w, &mut slots).unwrap();
    assert!(info.duplicate);
    let text = |s: &Slot| std::str::from_utf8(s.value(doc)).unwrap().to_owned();
    assert_eq!(text(&slots[a as usize]), r#"{"y":2}"#);
    assert!(
        !slots[ax as usize].is_found(),
        "x belonged to the first `a`"
    );
    assert_eq!(text(&slots[ay as usize]), "2");
    let sb = slots[b as usize];
    assert_eq!(text(&sb), r#""s""#);
    assert_eq!(&doc[sb.key as usize..sb.key as usize + 3], br#""b""#);
    assert_eq!(&doc[sb.prev as usize - 1..sb.prev as usize], b"}");
    assert_eq!(&doc[sb.next as usize..sb.next as usize + 3], br#""a""#);
    let sa = slots[a as usize];
    assert_eq!(
        doc[sa.next as usize], b'}',
        "the last member's next is the brace"
    );
}

/// JSON text with duplicate keys, escapes, odd spacing and every kind of value.
fn json_text() -> impl Strategy<Value = String> {
    let ws = prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n  "]);
    let key = prop::sample::select(vec![
        "\"a\"",
        "\"b\"",
        "\"c\"",
        "\"\\u0061\"",
        "\"é\"",
        "\"a.b\"",
        "\"\"",
    ]);
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        "-?(0|[1-9][0-9]{0,22})(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,3})?",
        prop::sample::select(vec![
            "\"\"",
            "\"x\"",
            "\"4111111111111111\"",
            "\"a\\\"b\"",
            "\"\\u00e9t\\u00e9\"",
            "\"Zoë\"",
            "\"\\ud83d\\ude00\"",
            "\"a\\\\b\\/c\\n\"",
            "\"XX\"",
            "\"NL\"",
        ])
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            (
                prop::collection::vec((inner.clone(), ws.clone()), 0..4),
                ws.clone()
            )
                .prop_map(|(items, w)| {
                    let body: Vec<String> =
                        items.iter().map(|(v, w2)| format!("{w2}{v}{w2}")).collect();
                    format!("[{w}{}]", body.join(","))
                }),
            (
                prop::collection::vec((key.clone(), inner, ws.clone()), 0..5),
                ws.clone()
            )
                .prop_map(|(members, w)| {
                    let body: Vec<String> = members
                        .iter()
                        .map(|(k, v, w2)| format!("{w2}{k}{w2}:{w}{v}"))
                        .collect();
                    format!("{{{w}{}{w}}}", body.join(","))
                }),
        ]
    })
}

/// A document with one byte changed, inserted or removed, to reach the malformed neighbours of
/// valid documents.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        prop::sample::select(b"{}[]:,\"\\ 0123456789.-+eEtrufalsn\x00\x1f\x7f".to_vec()),
        any::<u8>(),
    ];
    (json_text(), any::<prop::sample::Index>(), byte, 0..3u8).prop_map(|(t, at, b, op)| {
        let mut v = t.into_bytes();
        if v.is_empty() {
            return v;
        }
        let i = at.index(v.len());
        match op {
            0 => v[i] = b,
            1 => v.insert(i, b),
            _ => {
                v.remove(i);
            }
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_scanner_accepts_exactly_what_serde_json_accepts(doc in prop_oneof![json_text().prop_map(String::into_bytes), mutated()]) {
        if let Some(ok) = scanner_accepts(&doc) {
            prop_assert_eq!(ok, serde_accepts(&doc), "{:?}", String::from_utf8_lossy(&doc));
        }
    }

    #[test]
    fn slots_find_what_the_tree_finds(doc in json_text(), paths in prop::collection::vec(prop::sample::select(vec![
        "value.a", "value.b", "value.a.a", "value.a.b", "value.b.c", "value.é", "value[\"a.b\"]", "value[\"\"]", "value.a.a.a",
    ]), 1..4)) {
        let tree: Json = serde_json::from_str(&doc).unwrap();
        let mut w = Wanted::new();
        let nodes: Vec<u32> = paths.iter().map(|p| { let k = keys(p); w.path(k.iter().map(String::as_str)) }).collect();
        let mut slots = vec![Slot::NONE; w.len()];
        let info = scan(doc.as_bytes(), &w, &mut slots).unwrap();
        // The later stages' ways to the same members: trusting the bytes, or through the index
        // of the root object's members.
        let mut trusted = vec![Slot::NONE; w.len()];
        prop_assert_eq!(scan_valid(doc.as_bytes(), &w, &mut trusted), Ok(info));
        prop_assert_eq!(&trusted, &slots);
        let mut first = vec![Slot::NONE; w.len()];
        let (info2, index) = scan_indexed(doc.as_bytes(), &w, &mut first).unwrap();
        prop_assert_eq!(info2, info);
        prop_assert_eq!(&first, &slots);
        if let Some(index) = index {
            let mut through = vec![Slot::NONE; w.len()];
            prop_assert_eq!(scan_with_index(doc.as_bytes(), &index, &w, &mut through), Ok(info));
            prop_assert_eq!(&through, &slots);
        }
        for (p, n) in paths.iter().zip(nodes) {
            let want = get(&tree, &FieldPath::parse(p).unwrap().segments);
            let s = slots[n as usize];
            let got: Option<Json> = s.is_found().then(|| serde_json::from_slice(s.value(doc.as_bytes())).unwrap());
            prop_assert_eq!(got.as_ref(), want, "{} in {}", p, doc);
            if let Some(v) = want
                && let Some(sc) = scalar(s.value(doc.as_bytes()))
            {
                let as_json = match sc {
                    Scalar::Null => Json::Null,
                    Scalar::Bool(b) => Json::Bool(b),
                    Scalar::Number(t) => serde_json::from_str(t).unwrap(),
                    Scalar::String(t) => Json::String(t.into_owned()),
                };
                prop_assert_eq!(&as_json, v);
            }
        }
    }
}

//! Conformance tests written from the AWS EventBridge "content filtering" documentation's own
//! examples, plus properties of the matcher.

use super::pattern::Pattern;
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn m(pattern: Json, event: Json) -> bool {
    Pattern::compile(&pattern).unwrap().matches(&event)
}

fn compile_err(pattern: Json) -> String {
    Pattern::compile(&pattern).unwrap_err().message
}

#[test]
fn ec2_state_change_example() {
    let event = json!({"version":"0","id":"6a7e8feb","detail-type":"EC2 Instance State-change Notification",
        "source":"aws.ec2","account":"111122223333","time":"2017-12-22T18:43:48Z","region":"us-west-1",
        "resources":["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail":{"instance-id":"i-1234567890abcdef0","state":"terminated"}});
    let p = json!({"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"],"detail":{"state":["terminated"]}});
    assert!(m(p.clone(), event.clone()));
    let mut running = event.clone();
    running["detail"]["state"] = json!("running");
    assert!(!m(p, running));
    // Value lists are OR'd.
    assert!(m(
        json!({"detail":{"state":["running","terminated"]}}),
        event.clone()
    ));
    // Arrays in the event: the pattern matches when any element matches.
    assert!(m(
        json!({"resources":["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"]}),
        event
    ));
}

#[test]
fn prefix_and_prefix_ignoring_case() {
    assert!(m(
        json!({"time":[{"prefix":"2017-10-02"}]}),
        json!({"time":"2017-10-02T18:43:48Z"})
    ));
    assert!(!m(
        json!({"time":[{"prefix":"2017-10-02"}]}),
        json!({"time":"2017-10-03T18:43:48Z"})
    ));
    let p = json!({"service":[{"prefix":{"equals-ignore-case":"EventB"}}]});
    for s in ["EventBridge", "EVENTBRIDGE", "eventbridge"] {
        assert!(m(p.clone(), json!({"service": s})), "{s}");
    }
    assert!(!m(p, json!({"service":"Lambda"})));
    // Prefix only applies to strings.
    assert!(!m(json!({"n":[{"prefix":"1"}]}), json!({"n":12})));
}

#[test]
fn suffix_and_suffix_ignoring_case() {
    assert!(m(
        json!({"FileName":[{"suffix":".png"}]}),
        json!({"FileName":"image.png"})
    ));
    assert!(!m(
        json!({"FileName":[{"suffix":".png"}]}),
        json!({"FileName":"image.PNG"})
    ));
    assert!(m(
        json!({"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}),
        json!({"FileName":"image.PNG"})
    ));
}

#[test]
fn anything_but_forms() {
    let e = |state: Json| json!({"detail":{"state":state, "x-limit": 123}});
    assert!(m(
        json!({"detail":{"state":[{"anything-but":"initializing"}]}}),
        e(json!("running"))
    ));
    assert!(!m(
        json!({"detail":{"state":[{"anything-but":"initializing"}]}}),
        e(json!("initializing"))
    ));
    assert!(!m(
        json!({"detail":{"x-limit":[{"anything-but":123}]}}),
        e(json!("x"))
    ));
    assert!(m(
        json!({"detail":{"x-limit":[{"anything-but":[100,200,300]}]}}),
        e(json!("x"))
    ));
    let list = json!({"detail":{"state":[{"anything-but":["stopped","overloaded"]}]}});
    assert!(!m(list.clone(), e(json!("stopped"))));
    assert!(m(list, e(json!("running"))));
    let pre = json!({"detail":{"state":[{"anything-but":{"prefix":"init"}}]}});
    assert!(!m(pre.clone(), e(json!("initializing"))));
    assert!(m(pre, e(json!("running"))));
    let suf = json!({"detail":{"FileName":[{"anything-but":{"suffix":".txt"}}]}});
    assert!(!m(suf.clone(), json!({"detail":{"FileName":"notes.txt"}})));
    assert!(m(suf, json!({"detail":{"FileName":"image.png"}})));
    let ic = json!({"detail":{"state":[{"anything-but":{"equals-ignore-case":["Stopped","OverLoaded"]}}]}});
    assert!(!m(ic.clone(), e(json!("STOPPED"))));
    assert!(!m(ic.clone(), e(json!("overloaded"))));
    assert!(m(ic, e(json!("running"))));
    let wc = json!({"detail":{"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]}});
    assert!(!m(
        wc.clone(),
        json!({"detail":{"FilePath":"/usr/lib/x.so"}})
    ));
    assert!(m(wc, json!({"detail":{"FilePath":"/usr/bin/x"}})));
    let wcl = json!({"detail":{"FilePath":[{"anything-but":{"wildcard":["a/lib/*","*/bin/*"]}}]}});
    assert!(!m(wcl.clone(), json!({"detail":{"FilePath":"a/lib/z"}})));
    assert!(!m(wcl.clone(), json!({"detail":{"FilePath":"/usr/bin/z"}})));
    assert!(m(wcl, json!({"detail":{"FilePath":"/etc/z"}})));
    // anything-but never matches a missing field.
    assert!(!m(
        json!({"detail":{"nope":[{"anything-but":"x"}]}}),
        e(json!("y"))
    ));
}

#[test]
fn numeric_matching() {
    let p = json!({"detail":{"c-count":[{"numeric":[">",0,"<=",5]}],"d-count":[{"numeric":["<",10]}],"x-limit":[{"numeric":["=",3.018e2]}]}});
    assert!(m(
        p.clone(),
        json!({"detail":{"c-count":5,"d-count":7,"x-limit":301.8}})
    ));
    assert!(!m(
        p.clone(),
        json!({"detail":{"c-count":0,"d-count":7,"x-limit":301.8}})
    ));
    assert!(!m(
        p.clone(),
        json!({"detail":{"c-count":5,"d-count":10,"x-limit":301.8}})
    ));
    // Numeric matching only works on JSON numbers.
    assert!(!m(
        p,
        json!({"detail":{"c-count":"5","d-count":7,"x-limit":301.8}})
    ));
    // Exact numbers compare numerically.
    assert!(m(json!({"n":[300]}), json!({"n":300.0})));
}

#[test]
fn ip_address_matching() {
    let p = json!({"detail":{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}});
    assert!(m(
        p.clone(),
        json!({"detail":{"sourceIPAddress":"10.0.0.255"}})
    ));
    assert!(!m(
        p.clone(),
        json!({"detail":{"sourceIPAddress":"10.0.1.0"}})
    ));
    assert!(!m(p, json!({"detail":{"sourceIPAddress":"not-an-ip"}})));
    let v6 = json!({"detail":{"sourceIPAddress":[{"cidr":"2001:db8::/32"}]}});
    assert!(m(
        v6.clone(),
        json!({"detail":{"sourceIPAddress":"2001:db8:1::1"}})
    ));
    assert!(!m(v6, json!({"detail":{"sourceIPAddress":"2001:db9::1"}})));
}

#[test]
fn exists_matching_works_on_leaves_only() {
    let present = json!({"detail":{"state":[{"exists":true}]}});
    let absent = json!({"detail":{"c-count":[{"exists":false}]}});
    let ev = json!({"detail":{"state":"running"}});
    assert!(m(present.clone(), ev.clone()));
    assert!(m(absent.clone(), ev.clone()));
    assert!(!m(present, json!({"detail":{}})));
    assert!(!m(absent, json!({"detail":{"c-count":1}})));
    // Not on intermediate nodes: an object is not a leaf.
    assert!(!m(json!({"detail":[{"exists":true}]}), ev.clone()));
    // A missing parent is absence too.
    assert!(m(
        json!({"detail":{"state":[{"exists":false}]}}),
        json!({"other":1})
    ));
}

#[test]
fn equals_ignore_case_and_wildcard() {
    let p =
        json!({"detail-type":[{"equals-ignore-case":"ec2 instance state-change notification"}]});
    assert!(m(
        p,
        json!({"detail-type":"EC2 Instance State-change Notification"})
    ));
    let w = json!({"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]});
    assert!(m(
        w.clone(),
        json!({"EventBusArn":"arn:aws:events:us-east-1:123456789012:event-bus/myEventBus"})
    ));
    assert!(!m(
        w,
        json!({"EventBusArn":"arn:aws:events:us-west-2:123456789012:event-bus/myEventBus"})
    ));
    assert!(m(
        json!({"f":[{"wildcard":"dir/*.png"}]}),
        json!({"f":"dir/a.png"})
    ));
    assert!(m(json!({"f":[{"wildcard":"a\\*b"}]}), json!({"f":"a*b"})));
    assert!(!m(json!({"f":[{"wildcard":"a\\*b"}]}), json!({"f":"axxb"})));
    assert!(compile_err(json!({"f":[{"wildcard":"a**b"}]})).contains("consecutive"));
}

#[test]
fn or_matching() {
    let p = json!({"detail":{"$or":[{"c-count":[{"numeric":[">",0,"<=",5]}]},{"d-count":[{"numeric":["<",10]}]},{"x-limit":[{"numeric":["=",3.018e2]}]}]}});
    assert!(m(p.clone(), json!({"detail":{"c-count":3}})));
    assert!(m(p.clone(), json!({"detail":{"x-limit":301.8}})));
    assert!(!m(p, json!({"detail":{"c-count":9,"d-count":11}})));
    let top = json!({"source":["aws.cloudwatch"],"$or":[{"metricName":["CPUUtilization","ReadLatency"]},{"namespace":["AWS/EC2","AWS/ES"]}]});
    assert!(m(
        top.clone(),
        json!({"source":"aws.cloudwatch","namespace":"AWS/EC2"})
    ));
    assert!(!m(
        top.clone(),
        json!({"source":"aws.cloudwatch","namespace":"AWS/S3"})
    ));
    assert!(!m(
        top,
        json!({"source":"aws.other","metricName":"ReadLatency"})
    ));
}

#[test]
fn null_and_empty_values() {
    assert!(m(
        json!({"responseElements":[null]}),
        json!({"responseElements":null})
    ));
    assert!(
        !m(json!({"responseElements":[null]}), json!({})),
        "null does not match a missing field"
    );
    assert!(m(json!({"eventVersion":[""]}), json!({"eventVersion":""})));
    assert!(!m(
        json!({"eventVersion":[""]}),
        json!({"eventVersion":null})
    ));
    assert!(m(json!({"b":[false]}), json!({"b":false})));
}

#[test]
fn invalid_patterns_are_rejected_with_paths() {
    let e = Pattern::compile(&json!({"value":{"amount":[{"numeric":[">>",5]}]}})).unwrap_err();
    assert_eq!(e.path, "value.amount[0].numeric");
    assert!(
        e.message.contains("operator must be one of"),
        "{}",
        e.message
    );
    assert!(compile_err(json!({"a":"x"})).contains("lists"));
    assert!(compile_err(json!({"a":[{"prefx":"x"}]})).contains("did you mean `prefix`"));
    assert!(compile_err(json!({"a":[{"cidr":"10.0.0.0/99"}]})).contains("CIDR"));
    assert!(compile_err(json!({"a":[{"numeric":[">",1,">",2]}]})).contains("one lower bound"));
    assert!(
        compile_err(json!({"a":[{"anything-but":["x",1]}]}))
            .contains("only strings or only numbers")
    );
    assert!(compile_err(json!({"a":[]})).contains("matches nothing"));
}

#[test]
fn integers_beyond_doubles_match_exactly() {
    // Snowflake-style ids: neighbours differ only past a double's 53 bits.
    assert!(m(
        json!({"id":[9007199254740993u64]}),
        json!({"id":9007199254740993u64})
    ));
    assert!(!m(
        json!({"id":[9007199254740993u64]}),
        json!({"id":9007199254740992u64})
    ));
    assert!(!m(
        json!({"id":[12345678901234567890u64]}),
        json!({"id":12345678901234567891u64})
    ));
    let big: Json = serde_json::from_str(r#"{"id":123456789012345678901234567890}"#).unwrap();
    let pattern: Json = serde_json::from_str(r#"{"id":[123456789012345678901234567890]}"#).unwrap();
    let neighbour: Json = serde_json::from_str(r#"{"id":123456789012345678901234567891}"#).unwrap();
    assert!(m(pattern.clone(), big));
    assert!(!m(pattern, neighbour));
    // anything-but no longer excludes the neighbours of an id.
    let p = json!({"id":[{"anything-but":[9007199254740993u64]}]});
    assert!(m(p.clone(), json!({"id":9007199254740992u64})));
    assert!(m(p.clone(), json!({"id":9007199254740994u64})));
    assert!(!m(p, json!({"id":9007199254740993u64})));
    // Numeric ranges are exact too.
    let p = json!({"id":[{"numeric":[">", 9007199254740992u64]}]});
    assert!(m(p.clone(), json!({"id":9007199254740993u64})));
    assert!(!m(p, json!({"id":9007199254740992u64})));
    // The same number written differently is still equal.
    let three_hundred: Json = serde_json::from_str(r#"{"n":3e2}"#).unwrap();
    assert!(m(json!({"n":[300]}), three_hundred));
}

#[test]
fn arrays_of_arrays_are_flattened_as_eventbridge_does() {
    assert!(m(json!({"a":["x"]}), json!({"a":[["x"]]})));
    assert!(m(json!({"a":["x"]}), json!({"a":[["y"],[["x"]]]})));
    assert!(!m(json!({"a":["x"]}), json!({"a":[["y"]]})));
    assert!(m(json!({"a":[{"exists":true}]}), json!({"a":[[1]]})));
    assert!(m(
        json!({"a":[{"numeric":[">", 1]}]}),
        json!({"a":[[0],[2]]})
    ));
    assert!(m(json!({"a":{"b":["x"]}}), json!({"a":[[{"b":"x"}]]})));
}

#[test]
fn patterns_that_can_never_match_are_refused() {
    let e = Pattern::compile(&json!({"v":[{"numeric":[">", 10, "<", 1]}]})).unwrap_err();
    assert_eq!(e.path, "v[0].numeric");
    assert!(
        e.message
            .contains("can never match: no number is > 10 and < 1"),
        "{}",
        e.message
    );
    assert!(compile_err(json!({"v":[{"numeric":[">", 5, "<", 5]}]})).contains("can never match"));
    assert!(compile_err(json!({"v":[{"numeric":[">=", 5, "<", 5]}]})).contains("can never match"));
    // One number exactly is a valid range.
    assert!(m(
        json!({"v":[{"numeric":[">=", 5, "<=", 5]}]}),
        json!({"v":5})
    ));
    let huge: Json = serde_json::from_str(r#"{"v":[{"numeric":["<", 1e400]}]}"#).unwrap();
    assert!(compile_err(huge).contains("beyond the supported range"));
}

#[test]
fn matches_records_in_pipes_event_shape() {
    use weir_core::{Header, Origin};
    let f = FilterTransform::new(&[json!({"topic":["orders"],"headers":{"prio":["high"]},"value":{"amount":[{"numeric":[">",500]}]}})]).unwrap();
    let mut r = Record::from_bytes(&br#"{"amount": 900}"#[..]);
    r.meta.origin = Some(Origin {
        topic: "orders".into(),
        partition: 0,
        offset: 1,
    });
    r.headers.push(Header {
        name: "prio".into(),
        value: Some("high".into()),
    });
    assert!(matches!(f.apply(&mut r).unwrap(), Flow::Keep));
    r.headers.clear();
    assert!(matches!(f.apply(&mut r).unwrap(), Flow::Drop));
    // A value that is not JSON is an error for the error policy, not a silent drop.
    let mut bad = Record::from_bytes(&b"{oops"[..]);
    assert!(f.apply(&mut bad).is_err());
    // A pattern that never looks at `value` does not parse it.
    let g = FilterTransform::new(&[json!({"key":["k"]})]).unwrap();
    let mut unparsed = Record::from_bytes(&b"{oops"[..]);
    unparsed.key = Some("k".into());
    assert!(matches!(g.apply(&mut unparsed).unwrap(), Flow::Keep));
    assert!(unparsed.value.parsed().is_none());
}

fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        any::<i32>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9./:-]{0,12}".prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Json::Null),
    ]
}

fn event() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(leaf(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// An exact pattern built from an event's own leaves.
fn exact_pattern(e: &Json) -> Option<Json> {
    let obj = e.as_object()?;
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        match v {
            Json::Object(_) => {
                if let Some(p) = exact_pattern(v) {
                    out.insert(k.clone(), p);
                }
            }
            Json::Array(items) => {
                if let Some(first) = items.iter().find(|i| !i.is_object() && !i.is_array()) {
                    out.insert(k.clone(), json!([first]));
                }
            }
            leaf => {
                out.insert(k.clone(), json!([leaf]));
            }
        }
    }
    (!out.is_empty()).then_some(Json::Object(out))
}

proptest! {
    #[test]
    fn an_event_matches_the_exact_pattern_of_its_own_leaves(e in event()) {
        if let Some(p) = exact_pattern(&e) {
            prop_assert!(m(p, e));
        }
    }

    #[test]
    fn anything_but_is_the_complement_of_exact_for_strings_and_numbers(v in leaf(), other in leaf()) {
        prop_assume!(v.is_string() || v.is_number());
        let ev = json!({"f": other});
        let exact = m(json!({"f":[v.clone()]}), ev.clone());
        let but = m(json!({"f":[{"anything-but": v}]}), ev);
        if other.is_string() || other.is_number() {
            prop_assert_eq!(exact, !but);
        } else {
            prop_assert!(!but);
        }
    }

    #[test]
    fn prefix_of_a_string_always_matches(s in "[a-zA-Z0-9]{0,16}", cut in 0usize..17) {
        let cut = cut.min(s.len());
        let (head, tail) = (s[..cut].to_owned(), s[cut..].to_owned());
        let star = format!("{head}*");
        let p1 = m(json!({"f":[{"prefix": head}]}), json!({"f": s.clone()}));
        let p2 = m(json!({"f":[{"suffix": tail}]}), json!({"f": s.clone()}));
        let p3 = m(json!({"f":[{"wildcard": star}]}), json!({"f": s}));
        prop_assert!(p1 && p2 && p3);
    }

    #[test]
    fn numeric_range_agrees_with_arithmetic(x in -1.0e6f64..1.0e6, lo in -1.0e6f64..1.0e6, width in 0.0f64..1.0e6) {
        let hi = lo + width;
        // An empty range is refused when compiled (tested below).
        prop_assume!(hi > lo);
        let expected = x > lo && x <= hi;
        prop_assert_eq!(m(json!({"n":[{"numeric":[">", lo, "<=", hi]}]}), json!({"n": x})), expected);
    }

    #[test]
    fn or_is_the_disjunction_of_its_alternatives(a in event(), b in event(), e in event()) {
        if let (Some(pa), Some(pb)) = (exact_pattern(&a), exact_pattern(&b)) {
            let either = m(json!({"$or":[pa.clone(), pb.clone()]}), e.clone());
            prop_assert_eq!(either, m(pa, e.clone()) || m(pb, e));
        }
    }

    #[test]
    fn compiling_arbitrary_json_never_panics(p in event()) {
        let _ = Pattern::compile(&p);
    }
}

// The scanning path against the tree path: the same verdicts and the same errors.

/// JSON text over a few keys, with duplicate keys, escapes, spacing, nested arrays and every
/// kind of value, so that patterns over the same keys often reach something.
fn doc_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["\"a\"", "\"b\"", "\"c\"", "\"\\u0061\"", "\"é\""]);
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        prop::sample::select(vec![
            "0",
            "-0",
            "300",
            "300.0",
            "3e2",
            "3E+2",
            "-12.5",
            "9007199254740993",
            "9007199254740992",
            "1e400",
            "0.1",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![
            "\"\"",
            "\"x\"",
            "\"X\"",
            "\"eu-west-1\"",
            "\"EU-WEST-1\"",
            "\"a\\\"b\"",
            "\"\\u00e9t\\u00e9\"",
            "\"Été\"",
            "\"10.0.0.7\"",
            "\"2001:db8::1\"",
            "\"img.png\"",
            "\"NL\"",
            "\"XX\"",
        ])
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|m| {
                let body: Vec<String> = m.iter().map(|(k, v)| format!("{k} : {v}")).collect();
                format!("{{ {} }}", body.join(","))
            }),
        ]
    })
}

fn matcher() -> impl Strategy<Value = Json> {
    let text = prop::sample::select(vec!["", "x", "eu-", "EU-", "-1", "é", "png", "a\"b", "été"]);
    let num = prop::sample::select(vec![
        json!(0),
        json!(300),
        json!(-12.5),
        json!(9007199254740993u64),
        json!(0.1),
    ]);
    prop_oneof![
        text.clone().prop_map(|t| json!(t)),
        num.clone(),
        Just(json!(true)),
        Just(json!(false)),
        Just(Json::Null),
        text.clone().prop_map(|t| json!({"prefix": t})),
        text.clone().prop_map(|t| json!({"suffix": t})),
        text.clone()
            .prop_map(|t| json!({"prefix": {"equals-ignore-case": t}})),
        text.clone().prop_map(|t| json!({"equals-ignore-case": t})),
        text.clone().prop_map(|t| json!({"anything-but": t})),
        num.clone().prop_map(|n| json!({"anything-but": [n]})),
        text.clone()
            .prop_map(|t| json!({"anything-but": {"prefix": t}})),
        text.clone()
            .prop_map(|t| json!({"anything-but": {"equals-ignore-case": [t]}})),
        Just(json!({"anything-but": {"wildcard": "*.png"}})),
        num.clone().prop_map(|n| json!({"numeric": [">=", n]})),
        Just(json!({"numeric": [">", -13, "<=", 300]})),
        any::<bool>().prop_map(|b| json!({"exists": b})),
        Just(json!({"wildcard": "*e*"})),
        Just(json!({"cidr": "10.0.0.0/24"})),
        Just(json!({"cidr": "2001:db8::/32"})),
    ]
}

fn pattern_for_value() -> impl Strategy<Value = Json> {
    let key = prop::sample::select(vec!["a", "b", "c", "é"]).prop_map(str::to_owned);
    let leaf_rule = prop::collection::vec(matcher(), 1..3).prop_map(Json::Array);
    leaf_rule.prop_recursive(3, 12, 3, move |inner| {
        prop_oneof![
            prop::collection::btree_map(key.clone(), inner.clone(), 1..3)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
            (prop::collection::btree_map(key.clone(), inner.clone(), 1..2),
             prop::collection::btree_map(key.clone(), inner, 1..2))
                .prop_map(|(a, b)| json!({"$or": [Json::Object(a.into_iter().collect()), Json::Object(b.into_iter().collect())]})),
        ]
    })
}

/// The tree path's verdict: the value decoded first, as every stage did before.
fn tree_verdict(f: &FilterTransform, doc: &[u8]) -> Result<bool, String> {
    let mut r = Record::from_bytes(doc.to_vec());
    r.value.json().map_err(|e| e.to_string())?;
    f.matches(&mut r).map_err(|e| e.to_string())
}

fn fast_verdict(f: &FilterTransform, doc: &[u8]) -> Result<bool, String> {
    let mut r = Record::from_bytes(doc.to_vec());
    let v = f.matches(&mut r).map_err(|e| e.to_string());
    assert!(
        r.value.parsed().is_none() || v.is_err(),
        "the scan path builds no tree"
    );
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn scanning_and_decoding_give_the_same_verdicts(doc in doc_text(), p in pattern_for_value(), cut in any::<prop::sample::Index>()) {
        let f = match FilterTransform::new(&[json!({"value": p})]) {
            Ok(f) => f,
            Err(_) => return Ok(()),
        };
        prop_assert_eq!(fast_verdict(&f, doc.as_bytes()), tree_verdict(&f, doc.as_bytes()), "{}", doc);
        // Malformed: the same error message, so the same dead letter.
        let cut = &doc.as_bytes()[..cut.index(doc.len())];
        prop_assert_eq!(fast_verdict(&f, cut), tree_verdict(&f, cut));
    }
}

#[test]
fn malformed_values_fail_the_scan_path_with_the_decoder_s_error() {
    let f = FilterTransform::new(&[json!({"value": {"a": [{"exists": true}]}})]).unwrap();
    let deep = format!("{{\"a\":1,\"z\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<&[u8]> = vec![
        // Invalid JSON after the member the pattern reads: a filter that stopped there would
        // keep the record instead of failing it.
        br#"{"a": 1, "b": nope}"#,
        br#"{"a": 1,}"#,
        br#"{"a": 1} trailing"#,
        // Not UTF-8, inside a string the pattern never reads.
        b"{\"a\": 1, \"b\": \"\xff\xfe\"}",
        // A lone surrogate escape.
        br#"{"a": 1, "b": "\ud800"}"#,
        // Nested past serde_json's limit.
        deep.as_bytes(),
    ];
    for doc in cases {
        let fast = fast_verdict(&f, doc);
        let err = fast.clone().expect_err("malformed input is an error");
        assert!(err.contains("not valid JSON"), "{err}");
        // The same message as decoding gives (it names serde_json's line and column).
        let decoded = serde_json::from_slice::<Json>(doc).unwrap_err().to_string();
        assert!(err.ends_with(&decoded), "{err} vs {decoded}");
        assert_eq!(fast, tree_verdict(&f, doc));
    }
    // Duplicate keys: the last one counts, as when decoded.
    for (doc, want) in [
        (&br#"{"a": 1, "a": {"x": 1}}"#[..], false),
        (br#"{"a": {"x": 1}, "a": 1}"#, true),
    ] {
        assert_eq!(fast_verdict(&f, doc), Ok(want));
        assert_eq!(tree_verdict(&f, doc), Ok(want));
    }
}

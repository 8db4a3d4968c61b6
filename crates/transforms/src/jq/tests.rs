use super::*;
use serde_json::json;

fn t(program: &str) -> Box<dyn Transform> {
    JqTransformConfig {
        program: program.into(),
        input: JqInput::Event,
    }
    .build(&BuildContext::for_test("p", "c"))
    .unwrap()
}

fn build_err(program: &str) -> BuildError {
    JqTransformConfig {
        program: program.into(),
        input: JqInput::Event,
    }
    .build(&BuildContext::for_test("p", "c"))
    .err()
    .unwrap()
}

#[test]
fn maps_selects_and_splits() {
    let mut r = Record::from_bytes(&br#"{"amount": 150, "items": [1, 2, 3]}"#[..]);
    assert!(matches!(
        t(".value | {big: (.amount > 100)}").apply(&mut r).unwrap(),
        Flow::Keep
    ));
    assert_eq!(r.value.parsed().unwrap(), &json!({"big": true}));
    let mut r = Record::from_bytes(&br#"{"amount": 5}"#[..]);
    assert!(matches!(
        t(".value | select(.amount > 100)").apply(&mut r).unwrap(),
        Flow::Drop
    ));
    let mut r = Record::from_bytes(&br#"{"items": [1, 2, 3]}"#[..]);
    match t(".value.items[]").apply(&mut r).unwrap() {
        Flow::Split(rs) => assert_eq!(
            rs.iter()
                .map(|r| r.value.parsed().unwrap().clone())
                .collect::<Vec<_>>(),
            vec![json!(1), json!(2), json!(3)]
        ),
        other => panic!("expected a split, got {other:?}"),
    }
}

#[test]
fn compile_and_runtime_errors_are_clear() {
    let e = build_err(".value | (");
    assert_eq!(e.path, "program");
    assert!(e.message.contains("does not parse"), "{}", e.message);
    let e = build_err("nosuchfn(1)");
    assert!(e.message.contains("does not compile"), "{}", e.message);
    let mut r = Record::from_bytes(&br#"{"a": "text"}"#[..]);
    let err = t(".value.a + 1").apply(&mut r).unwrap_err();
    assert!(err.to_string().contains("jq program failed"), "{err}");
}

#[test]
fn library_and_user_functions_still_work_behind_the_guard() {
    let mut r = Record::from_bytes(&br#"{"tree": {"a": [1, {"b": 2}]}, "n": 10}"#[..]);
    let prog = "def fact: if . <= 1 then 1 else . * (. - 1 | fact) end; \
                .value | {paths: [paths] | length, fact: (.n | fact), walked: (.tree | walk(if type == \"number\" then . + 1 else . end)), up: (.tree.a[1].b |= . * 3)}";
    t(prog).apply(&mut r).unwrap();
    // What jq 1.6 (`/usr/bin/jq`) prints for the same program and input.
    assert_eq!(
        r.value.parsed().unwrap(),
        &json!({"paths": 6, "fact": 3628800, "walked": {"a": [2, {"b": 3}]},
                "up": {"tree": {"a": [1, {"b": 6}]}, "n": 10}})
    );
}

/// Runs a batch the way the runner does and returns each record's outcome.
async fn batch(program: &str, values: &[&str]) -> Vec<Result<Json, String>> {
    let t = t(program);
    let mut records: Vec<Record> = values
        .iter()
        .map(|v| Record::from_bytes(v.as_bytes().to_vec()))
        .collect();
    let out = t.apply_batch(&mut records).await;
    out.into_iter()
        .zip(records)
        .map(|(o, r)| match o {
            Ok(Flow::Keep) => Ok(r.value.parsed().unwrap().clone()),
            Ok(other) => Err(format!("unexpected {other:?}")),
            Err(e) => Err(e.to_string()),
        })
        .collect()
}

#[tokio::test]
async fn infinite_recursion_fails_the_record_and_the_rest_of_the_batch_goes_on() {
    let out = batch(
        "def f: [f]; if .value.bad then f else .value end",
        &[r#"{"id":1}"#, r#"{"bad":true}"#, r#"{"id":3}"#],
    )
    .await;
    assert_eq!(out[0], Ok(json!({"id": 1})));
    let err = out[1].as_ref().unwrap_err();
    assert!(err.contains("recursion too deep"), "{err}");
    assert_eq!(out[2], Ok(json!({"id": 3})));
}

#[tokio::test]
async fn an_output_as_deep_as_the_record_asks_fails_that_record_only() {
    let prog = "reduce range(.value.n) as $i (null; {wrap: .})";
    let out = batch(prog, &[r#"{"n":3}"#, r#"{"n":5000}"#, r#"{"n":100000}"#]).await;
    assert_eq!(out[0], Ok(json!({"wrap": {"wrap": {"wrap": null}}})));
    for e in &out[1..] {
        let e = e.as_ref().unwrap_err();
        assert!(e.contains("nests deeper than 128 levels"), "{e}");
    }
    let out = batch(&format!("{prog} | tojson"), &[r#"{"n":5000}"#]).await;
    let e = out[0].as_ref().unwrap_err();
    assert!(e.contains("too deep"), "{e}");
}

#[tokio::test]
async fn numbers_keep_their_digits_through_a_program() {
    let t = t(".value | {id, x, n: (.small + 1)}");
    let mut r = Record::from_bytes(
        &br#"{"id":123456789012345678901234567890,"x":2.2250738585072011e-308,"small":41}"#[..],
    );
    let mut rs = [r.clone()];
    let out = t.apply_batch(&mut rs).await;
    assert!(matches!(out[0], Ok(Flow::Keep)), "{out:?}");
    r = rs[0].clone();
    assert_eq!(
        String::from_utf8(r.value.to_bytes().to_vec()).unwrap(),
        r#"{"id":123456789012345678901234567890,"x":2.2250738585072011e-308,"n":42}"#
    );
}

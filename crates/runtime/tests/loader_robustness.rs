//! No input makes the config loader panic: arbitrary bytes and mutations of a valid pipeline file
//! either load or produce located errors. (The cargo-fuzz target in fuzz/ explores further.)

use proptest::prelude::*;
use weir_core::config::load_str_partial;
use weir_runtime::{MetricsRegistry, builtin_registry};

const VALID: &str = include_str!("../../../examples/quickstart.yaml");

fn check(text: &str) {
    let registry = builtin_registry().unwrap();
    let (specs, errors) = load_str_partial("fuzz.yaml", text, &|_| None);
    for e in &errors {
        assert!(e.location.line >= 1, "errors are located: {e}");
        let _ = e.to_string();
    }
    if let Err(e) = weir_runtime::build(specs, &registry, &MetricsRegistry::default()) {
        let _ = e.to_string();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn mutated_pipelines_never_panic(cuts in prop::collection::vec((0usize..VALID.len(), 0usize..8, "[\\[\\]{}:,'\"&*!|>#\\-a-z0-9 \n\t]{0,6}"), 1..6)) {
        let mut text = VALID.to_owned();
        for (at, del, ins) in cuts {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + del).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(at..end, &ins);
        }
        check(&text);
    }
}

#[test]
fn deep_nesting_and_alias_bombs_are_refused_not_fatal() {
    check(&format!(
        "pipelines: {}{}",
        "[".repeat(5000),
        "]".repeat(5000)
    ));
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    let (_, errors) = load_str_partial("bomb.yaml", bomb, &|_| None);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .message
            .contains("expands too much through anchors and aliases"),
        "{}",
        errors[0]
    );
}

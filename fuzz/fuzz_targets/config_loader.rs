//! Fuzzes YAML loading, `${VAR}` expansion, spec parsing and plugin building: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let registry = weir_runtime::builtin_registry().expect("registry");
    let (specs, errors) = weir_core::config::load_str_partial("fuzz.yaml", text, &|name| (name == "SET").then(|| "value".to_owned()));
    for e in &errors {
        let _ = e.to_string();
    }
    if let Err(e) = weir_runtime::build(specs, &registry, &weir_runtime::MetricsRegistry::default()) {
        let _ = e.to_string();
    }
});

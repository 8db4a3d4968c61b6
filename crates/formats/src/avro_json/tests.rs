//! Expected values come from outside this code: Python's `datetime` and `int.to_bytes` for the
//! calendar and decimal figures, and the Avro specification for the JSON shapes.

use apache_avro::Schema;
use proptest::prelude::*;
use serde_json::json;
use weir_core::config::format::{TimeStyle, UnionStyle};

use super::*;

const TX: &str = r#"{
  "type": "record", "name": "Tx", "namespace": "demo",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "tod", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["CARD", "WIRE"]}},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "raw", "type": "bytes"},
    {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "tags", "type": {"type": "map", "values": "int"}},
    {"name": "items", "type": {"type": "array", "items": "double"}},
    {"name": "country", "type": "string", "default": "NL"}
  ]
}"#;

fn compiled() -> Compiled {
    Compiled::new(Schema::parse_str(TX).unwrap()).unwrap()
}

fn sample() -> serde_json::Value {
    json!({
        "id": 7, "amount": "-12.34", "day": 20780, "at": 1795437000250i64, "at_us": 1795437000250000i64,
        "tod": 45000250, "kind": "WIRE", "note": "hello", "raw": "AAEC", "uid": "123e4567-e89b-12d3-a456-426614174000",
        "tags": {"a": 1}, "items": [1.5], "country": "DE"
    })
}

#[test]
fn json_round_trips_through_avro_binary() {
    let c = compiled();
    let v = c.from_json(&sample()).unwrap();
    #[allow(deprecated)]
    let bytes = apache_avro::to_avro_datum(&c.schema, v).unwrap();
    #[allow(deprecated)]
    let back = apache_avro::from_avro_datum(&c.schema, &mut &bytes[..], None).unwrap();
    assert_eq!(c.to_json(&back, ReadStyle::default()).unwrap(), sample());
}

#[test]
fn rfc3339_times_and_tagged_unions() {
    let c = compiled();
    let v = c.from_json(&sample()).unwrap();
    let style = ReadStyle {
        unions: UnionStyle::Tagged,
        times: TimeStyle::Rfc3339,
    };
    let j = c.to_json(&v, style).unwrap();
    assert_eq!(j["day"], "2026-11-23");
    assert_eq!(j["at"], "2026-11-23T12:30:00.25Z");
    assert_eq!(j["at_us"], "2026-11-23T12:30:00.25Z");
    assert_eq!(j["tod"], "12:30:00.25");
    assert_eq!(j["note"], json!({"string": "hello"}));
    // What reading produced, writing accepts.
    let again = c.from_json(&j).unwrap();
    assert_eq!(c.to_json(&again, ReadStyle::default()).unwrap(), sample());
}

#[test]
fn absent_fields_take_schema_defaults_and_misfits_name_the_field() {
    let c = compiled();
    let mut j = sample();
    j.as_object_mut().unwrap().remove("note");
    j.as_object_mut().unwrap().remove("country");
    let out = c
        .to_json(&c.from_json(&j).unwrap(), ReadStyle::default())
        .unwrap();
    assert_eq!(out["note"], serde_json::Value::Null);
    assert_eq!(out["country"], "NL");

    let mut bad = sample();
    bad["amount"] = json!("1.234");
    let e = c.from_json(&bad).unwrap_err().to_string();
    assert!(e.contains("$.amount") && e.contains("scale"), "{e}");
    let mut bad = sample();
    bad["kind"] = json!("CASH");
    let e = c.from_json(&bad).unwrap_err().to_string();
    assert!(e.contains("$.kind") && e.contains("CARD, WIRE"), "{e}");
    let mut bad = sample();
    bad.as_object_mut().unwrap().shift_remove("id");
    let e = c.from_json(&bad).unwrap_err().to_string();
    assert!(e.contains("$.id") && e.contains("required"), "{e}");
    let mut bad = sample();
    bad["extra"] = json!(1);
    let e = c.from_json(&bad).unwrap_err().to_string();
    assert!(
        e.contains("$.extra") && e.contains("not in the schema"),
        "{e}"
    );
}

#[test]
fn decimals_match_twos_complement_figures() {
    // Python: (-1234).to_bytes(2, 'big', signed=True) == b'\xfb\x2e'
    assert_eq!(parse_decimal("-12.34", 2, 10).unwrap(), vec![0xfb, 0x2e]);
    assert_eq!(parse_decimal("12.34", 2, 10).unwrap(), vec![0x04, 0xd2]);
    assert_eq!(format_decimal(&[0xfb, 0x2e], 2).unwrap(), "-12.34");
    assert_eq!(format_decimal(&[0x04, 0xd2], 4).unwrap(), "0.1234");
    assert!(
        parse_decimal("123456789.01", 2, 10)
            .unwrap_err()
            .to_string()
            .contains("precision")
    );
}

#[test]
fn calendar_figures_match_pythons_datetime() {
    // Python: (date(y, m, d) - date(1970, 1, 1)).days
    assert_eq!(format_date(20780), "2026-11-23");
    assert_eq!(format_date(-1), "1969-12-31");
    assert_eq!(format_date(11016), "2000-02-29");
    assert_eq!(parse_date("2000-02-29"), Some(11016));
    // Python: int(datetime(2026,11,23,12,30,0,250000,tzinfo=utc).timestamp()*1000)
    assert_eq!(
        parse_timestamp("2026-11-23T12:30:00.250Z"),
        Some(1_795_437_000_250_000_000)
    );
    assert_eq!(
        parse_timestamp("2026-11-23T13:30:00.250+01:00"),
        Some(1_795_437_000_250_000_000)
    );
}

const RICH: &str = r#"{
  "type": "record", "name": "Rich", "namespace": "t",
  "fields": [
    {"name": "i", "type": "int"},
    {"name": "l", "type": "long"},
    {"name": "f", "type": "float"},
    {"name": "d", "type": "double"},
    {"name": "b", "type": "boolean"},
    {"name": "s", "type": "string"},
    {"name": "by", "type": "bytes"},
    {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
    {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
    {"name": "u", "type": ["null", "string", "long",
      {"type": "record", "name": "Inner", "fields": [
        {"name": "x", "type": "int"}, {"name": "y", "type": ["null", "double"]}]}]},
    {"name": "arr", "type": {"type": "array", "items": {"type": "map", "values": "long"}}},
    {"name": "dec", "type": {"type": "fixed", "name": "Dec", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 3}},
    {"name": "date", "type": {"type": "int", "logicalType": "date"}},
    {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "tus", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "lts", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "again", "type": ["null", "Inner"]}
  ]
}"#;

fn styles() -> [ReadStyle; 4] {
    let s = |unions, times| ReadStyle { unions, times };
    [
        s(UnionStyle::Plain, TimeStyle::Integer),
        s(UnionStyle::Tagged, TimeStyle::Integer),
        s(UnionStyle::Plain, TimeStyle::Rfc3339),
        s(UnionStyle::Tagged, TimeStyle::Rfc3339),
    ]
}

/// The one-pass decoder against apache-avro's decoder followed by `to_json`, on the same bytes.
fn assert_both_decoders_agree(c: &Compiled, bytes: &[u8]) {
    for style in styles() {
        #[allow(deprecated)]
        let generic = apache_avro::from_avro_datum(&c.schema, &mut &bytes[..], None)
            .map_err(|e| e.to_string())
            .and_then(|v| c.to_json(&v, style).map_err(|e| e.to_string()));
        let mut rest = bytes;
        let direct = c
            .decode_to_json(&mut rest, style)
            .map_err(|e| e.to_string());
        match (&generic, &direct) {
            (Ok(g), Ok(d)) => assert_eq!(g, d, "{style:?}"),
            (Err(_), Err(_)) => {}
            // On bytes that are not a valid datum the two may disagree on *whether* to fail
            // (apache-avro is laxer in places); on valid data they must agree exactly.
            _ => {}
        }
    }
}

#[test]
fn the_one_pass_decoder_matches_decode_then_convert() {
    let c = compiled();
    let v = c.from_json(&sample()).unwrap();
    #[allow(deprecated)]
    let bytes = apache_avro::to_avro_datum(&c.schema, v).unwrap();
    assert_both_decoders_agree(&c, &bytes);
    let mut rest = &bytes[..];
    assert_eq!(
        c.decode_to_json(&mut rest, ReadStyle::default()).unwrap(),
        sample()
    );
    assert!(rest.is_empty());
}

fn rich_value() -> impl Strategy<Value = serde_json::Value> {
    let inner =
        (any::<i32>(), prop::option::of(-1e9f64..1e9)).prop_map(|(x, y)| json!({"x": x, "y": y}));
    let union = prop_oneof![
        Just(serde_json::Value::Null),
        "[a-zé ]{0,8}".prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        inner.clone(),
    ];
    let arr = prop::collection::vec(
        prop::collection::btree_map("[a-z]{1,3}", any::<i64>(), 0..3),
        0..3,
    );
    (
        (any::<i32>(), any::<i64>(), any::<f32>(), any::<f64>(), any::<bool>()),
        ("\\PC{0,12}", prop::collection::vec(any::<u8>(), 0..6), any::<[u8; 4]>(), 0..3usize),
        (union, arr, -999_999_999_999i64..999_999_999_999, any::<i32>()),
        (0..86_400_000i32, 0..86_400_000_000i64, any::<i64>(), -10_000_000_000_000i64..10_000_000_000_000),
        (any::<u128>(), prop::option::of(inner)),
    )
        .prop_map(|((i, l, f, d, b), (s, by, fx, e), (u, arr, dec, date), (tm, tus, ts, lts), (uid, again))| {
            json!({
                "i": i, "l": l, "f": if f.is_finite() { json!(f) } else { json!("NaN") },
                "d": if d.is_finite() { json!(d) } else { json!("-Infinity") }, "b": b,
                "s": s, "by": B64.encode(by), "fx": B64.encode(fx), "e": (["A", "B", "C"][e]),
                "u": u, "arr": arr,
                "dec": format!("{}{}.{:03}", if dec < 0 { "-" } else { "" }, dec.abs() / 1000, dec.abs() % 1000),
                "date": date, "tm": tm, "tus": tus, "ts": ts, "lts": lts,
                "uid": apache_avro::Uuid::from_u128(uid).to_string(), "again": again,
            })
        })
}

proptest::proptest! {
    #[test]
    fn the_one_pass_decoder_agrees_on_random_values(v in rich_value()) {
        let c = Compiled::new(Schema::parse_str(RICH).unwrap()).unwrap();
        let value = c.from_json(&v).unwrap();
        #[allow(deprecated)]
        let bytes = apache_avro::to_avro_datum(&c.schema, value).unwrap();
        assert_both_decoders_agree(&c, &bytes);
        // And every valid datum decodes.
        let mut rest = &bytes[..];
        c.decode_to_json(&mut rest, ReadStyle::default()).unwrap();
        proptest::prop_assert!(rest.is_empty());
    }

    #[test]
    fn the_one_pass_decoder_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let c = Compiled::new(Schema::parse_str(RICH).unwrap()).unwrap();
        assert_both_decoders_agree(&c, &bytes);
    }
}

//! `insert`: adds static or templated fields and headers (Kafka Connect InsertField/InsertHeader).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use weir_core::json::{Kind, ScanError, Slots, Splice, Wanted, kind, scan_value};
use weir_core::path::{self, FieldPath, Root, Segment};
use weir_core::template::{Template, TemplateContext};
use weir_core::{BuildContext, BuildError, Flow, PluginConfig, Record, Transform, TransformError};

/// Adds fields to the value and headers to the record. String values may be Pipes templates
/// (`"<$.topic>"`, `"<weir.event.ingestion-time>"`); other values are inserted as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertTransformConfig {
    /// Value paths to set (`value.meta.source: weir`), created as needed.
    #[serde(default)]
    pub fields: IndexMap<String, Json>,
    /// Headers to set; values are text templates.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Replace values and headers that already exist (otherwise keep them).
    #[serde(default = "yes")]
    pub overwrite: bool,
}

fn yes() -> bool {
    true
}

enum FieldValue {
    Static(Json),
    Template(Template),
}

/// The compiled insert transform.
pub struct InsertTransform {
    pipeline: String,
    fields: Vec<(Vec<Segment>, FieldValue)>,
    /// Per field, the keys of its path in a [`Wanted`] tree of their own, to splice the field
    /// into the value's bytes (paths are keys only: wildcards are refused, indexes take the tree).
    splice: Vec<Option<(Wanted, Vec<u32>)>>,
    headers: Vec<(String, Template)>,
    overwrite: bool,
}

impl PluginConfig for InsertTransformConfig {
    const TYPE: &'static str = "insert";
    const SUMMARY: &'static str = "Add static or templated fields and headers";
    const EXAMPLE: &'static str = r#"type: insert
fields:
  value.meta.pipeline: "<weir.pipeline>"
  value.meta.source_topic: "<$.topic>"
  value.meta.version: 2
headers:
  x-origin: "weir/<weir.pipeline>"
"#;
    type Output = dyn Transform;

    fn build(self, cx: &BuildContext) -> Result<Box<dyn Transform>, BuildError> {
        if self.fields.is_empty() && self.headers.is_empty() {
            return Err(BuildError::new(
                "nothing to insert: give `fields` or `headers`",
            ));
        }
        let mut fields = Vec::new();
        for (p, v) in self.fields {
            let at = format!("fields[{p:?}]");
            let fp = FieldPath::parse(&p).map_err(|e| BuildError::at(&at, e.to_string()))?;
            if fp.root != Root::Value || fp.has_wildcard() || fp.segments.is_empty() {
                return Err(BuildError::at(
                    at,
                    format!(
                        "{p:?}: fields are set at value paths without wildcards, e.g. value.meta.source"
                    ),
                ));
            }
            let value = match v {
                Json::String(s) => {
                    let t =
                        Template::compile(&s).map_err(|e| BuildError::at(&at, e.to_string()))?;
                    if t.is_static() {
                        FieldValue::Static(Json::String(s))
                    } else {
                        FieldValue::Template(t)
                    }
                }
                other => FieldValue::Static(other),
            };
            fields.push((fp.segments, value));
        }
        let headers = self
            .headers
            .into_iter()
            .map(|(k, v)| {
                Template::compile(&v)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| BuildError::at(format!("headers[{k:?}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let splice = fields
            .iter()
            .map(|(segs, _)| {
                let keys = weir_core::json::key_path(segs)?;
                let mut wanted = Wanted::new();
                let mut nodes = vec![Wanted::ROOT];
                for k in keys {
                    let parent = *nodes.last().expect("root");
                    nodes.push(wanted.child(parent, k));
                }
                Some((wanted, nodes))
            })
            .collect();
        Ok(Box::new(InsertTransform {
            pipeline: cx.pipeline.to_string(),
            splice,
            fields,
            headers,
            overwrite: self.overwrite,
        }))
    }
}

weir_core::register_plugin!(InsertTransformConfig);

impl Transform for InsertTransform {
    fn apply(&self, record: &mut Record) -> Result<Flow, TransformError> {
        let cx = TemplateContext {
            pipeline: &self.pipeline,
        };
        for (name, t) in &self.headers {
            if !self.overwrite && record.header(name).is_some() {
                continue;
            }
            let v = t
                .render_text(record, &cx)
                .map_err(|e| TransformError::Fatal(e.to_string()))?;
            record.set_header(name.clone(), v);
        }
        if self.fields.is_empty() {
            return Ok(Flow::Keep);
        }
        let rendered: Vec<Json> = self
            .fields
            .iter()
            .map(|(_, v)| match v {
                FieldValue::Static(j) => Ok(j.clone()),
                FieldValue::Template(t) => t
                    .render(record, &cx)
                    .map_err(|e| TransformError::Fatal(e.to_string())),
            })
            .collect::<Result<_, _>>()?;
        // Into the bytes while they can be spliced, then as a tree for the rest.
        let mut pending = rendered.into_iter().enumerate();
        while let Some((i, value)) = pending.next() {
            if self.splice_one(record, i, &value).is_some() {
                continue;
            }
            let v = record.value.json_mut()?;
            for (j, value) in std::iter::once((i, value)).chain(pending.by_ref()) {
                let segs = &self.fields[j].0;
                if !self.overwrite && path::get(v, segs).is_some() {
                    continue;
                }
                path::insert(v, segs, value)
                    .map_err(|e| TransformError::Fatal(format!("insert: {e}")))?;
            }
        }
        Ok(Flow::Keep)
    }
}

impl InsertTransform {
    /// Sets field `i` by splicing the value's bytes; `None` when the tree path must do it (the
    /// value is a tree or not valid JSON, a key on the path repeats, or a step meets a value
    /// that is neither an object nor null, which the tree path reports).
    fn splice_one(&self, record: &mut Record, i: usize, value: &Json) -> Option<()> {
        let (wanted, nodes) = self.splice[i].as_ref()?;
        let mut slots = Slots::for_wanted(wanted);
        match scan_value(&mut record.value, wanted, slots.slots_mut())? {
            Ok(info) if !info.duplicate => {}
            Ok(_) | Err(ScanError::Invalid | ScanError::Unsupported) => return None,
        }
        let doc = record.value.bytes().expect("scanned bytes");
        let slots = slots.slots();
        let keys = weir_core::json::key_path(&self.fields[i].0).expect("a key path");
        let deepest = nodes
            .iter()
            .rposition(|n| slots[*n as usize].is_found())
            .expect("the root is always found");
        let mut edits = Splice::new(doc);
        let text = serde_json::to_vec(value).expect("JSON serializes");
        if deepest == nodes.len() - 1 {
            if !self.overwrite {
                return Some(());
            }
            let s = slots[nodes[deepest] as usize];
            edits.replace(s.start, s.end, &text);
        } else {
            let s = slots[nodes[deepest] as usize];
            let at = s.value(doc);
            // `"k1":{"k2":…value}` for the keys that are not there yet.
            let write_member = |b: &mut Vec<u8>| {
                let rest = &keys[deepest..];
                for (j, k) in rest.iter().enumerate() {
                    if j > 0 {
                        b.push(b'{');
                    }
                    serde_json::to_writer(&mut *b, k).expect("strings serialize");
                    b.push(b':');
                }
                b.extend_from_slice(&text);
                b.extend(std::iter::repeat_n(b'}', rest.len() - 1));
            };
            match kind(at) {
                Kind::Object => {
                    let close = s.end - 1;
                    let empty = at[1..at.len() - 1].iter().all(u8::is_ascii_whitespace);
                    edits.replace_with(close, close, |b| {
                        if !empty {
                            b.push(b',');
                        }
                        write_member(b);
                    });
                }
                Kind::Scalar if at == b"null" => edits.replace_with(s.start, s.end, |b| {
                    b.push(b'{');
                    write_member(b);
                    b.push(b'}');
                }),
                _ => return None,
            }
        }
        let out = edits.finish().expect("one edit");
        record.value.set_spliced(out);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_core::Origin;
    use weir_core::config::{SourceFile, from_node, load::parse_yaml};

    fn build(yaml: &str) -> Result<Box<dyn Transform>, BuildError> {
        let n = parse_yaml(&SourceFile::new("t", yaml)).unwrap();
        from_node::<InsertTransformConfig>(&n, "")
            .unwrap()
            .build(&BuildContext::for_test("pl", "c"))
    }

    #[test]
    fn inserts_static_templated_fields_and_headers() {
        let t = build("fields:\n  value.meta.topic: \"<$.topic>\"\n  value.meta.v: 2\n  value.meta.p: \"<weir.pipeline>\"\nheaders:\n  x-id: \"id-<$.value.id>\"\n").unwrap();
        let mut r = Record::from_json(json!({"id": 5}));
        r.meta.origin = Some(Origin {
            topic: "orders".into(),
            partition: 0,
            offset: 0,
        });
        t.apply(&mut r).unwrap();
        assert_eq!(
            r.value.parsed().unwrap(),
            &json!({"id":5,"meta":{"topic":"orders","v":2,"p":"pl"}})
        );
        assert_eq!(r.header("x-id"), Some(&b"id-5"[..]));
    }

    #[test]
    fn overwrite_false_keeps_existing() {
        let t = build("fields: { value.a: 1 }\nheaders: { h: new }\noverwrite: false\n").unwrap();
        let mut r = Record::from_json(json!({"a": 0}));
        r.set_header("h", "old");
        t.apply(&mut r).unwrap();
        assert_eq!(r.value.parsed().unwrap()["a"], 0);
        assert_eq!(r.header("h"), Some(&b"old"[..]));
    }

    fn doc_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec!["\"a\"", "\"b\"", "\"meta\"", "\"\\u0061\""]);
        let leaf = prop::sample::select(vec!["null", "1E5", "\"s\"", "[1]", "{}", "{ }", "-0.0"])
            .prop_map(str::to_owned);
        leaf.prop_recursive(3, 16, 3, move |inner| {
            prop::collection::vec((key.clone(), inner), 0..4).prop_map(|m| {
                let body: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{ {} }}", body.join(" , "))
            })
        })
    }

    /// The spliced result and the tree path's (decode, insert, serialize), or their errors.
    fn both(t: &dyn Transform, doc: &str) -> (Result<String, String>, Result<String, String>) {
        let run = |mut r: Record| {
            t.apply(&mut r)
                .map(|_| {
                    serde_json::from_slice::<Json>(&r.value.to_bytes())
                        .unwrap()
                        .to_string()
                })
                .map_err(|e| e.to_string())
        };
        let fast = run(Record::from_bytes(doc.as_bytes().to_vec()));
        let tree = match serde_json::from_str::<Json>(doc) {
            Ok(j) => run(Record::from_json(j)),
            Err(e) => Err(weir_core::record::DecodeError(e.to_string()).to_string()),
        };
        (fast, tree)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1500))]

        #[test]
        fn splicing_inserts_what_the_tree_path_inserts(
            doc in doc_text(),
            fields in proptest::sample::subsequence(vec![
                ("value.meta.pipeline", "\"<weir.pipeline>\""),
                ("value.a", "2"),
                ("value.a.b", "{\"x\": [1, \"é\"]}"),
                ("value.meta.n", "12345678901234567890123"),
                ("value.b", "\"t\\\"q\""),
            ], 1..4),
            overwrite in proptest::bool::ANY,
        ) {
            let body: Vec<String> = fields.iter().map(|(p, v)| format!("  {p}: {v}")).collect();
            let yaml = format!("fields:\n{}\noverwrite: {overwrite}\n", body.join("\n"));
            let t = build(&yaml).unwrap();
            let (fast, tree) = both(&*t, &doc);
            proptest::prop_assert_eq!(fast, tree, "{}", yaml);
            let cut = &doc[..doc.len() - 1];
            let (fast, tree) = both(&*t, cut);
            proptest::prop_assert_eq!(fast, tree);
        }
    }

    #[test]
    fn inserting_keeps_the_bytes_it_does_not_edit() {
        let t = build("fields:\n  value.meta.v: 2\n  value.id: \"<$.value.id>\"\n").unwrap();
        let doc = r#"{ "id" : 12345678901234567890123, "n": 1E5 , "meta" : { } }"#;
        let mut r = Record::from_bytes(doc.as_bytes().to_vec());
        t.apply(&mut r).unwrap();
        // By hand: `v` goes into the empty `meta`; `id` is set to its own value, which the
        // template renders with all its digits.
        let want = doc.replace("{ }", "{ \"v\":2}");
        assert_eq!(std::str::from_utf8(&r.value.to_bytes()).unwrap(), want);
        assert!(r.value.parsed().is_none(), "no tree kept");
    }

    #[test]
    fn rejects_bad_paths_and_templates() {
        assert!(
            build("fields: { value.a.*: 1 }\n")
                .err()
                .unwrap()
                .message
                .contains("without wildcards")
        );
        assert!(
            build("headers: { h: \"<weir.nope>\" }\n")
                .err()
                .unwrap()
                .message
                .contains("unknown variable")
        );
    }
}

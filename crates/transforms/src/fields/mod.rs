//! `fields`: include / exclude / rename / mask / hash fields by path, with wildcards into arrays
//! (PII filtering; Kafka Connect's ReplaceField and MaskField).

mod config;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use weir_core::path::{self, FieldPath, Projection, Root, Segment};
use weir_core::{Flow, Record, Transform, TransformError};

pub use config::FieldsTransformConfig;

/// The compiled field operations, applied in the order include, exclude, rename, mask, hash.
pub struct FieldsTransform {
    include: Option<Projection>,
    exclude: Vec<FieldPath>,
    rename: Vec<(Vec<Segment>, Vec<Segment>)>,
    mask: Vec<Vec<Segment>>,
    mask_with: Json,
    keep_last: usize,
    hash: Vec<Vec<Segment>>,
    salt: Vec<u8>,
}

fn mask_value(v: &mut Json, with: &Json, keep_last: usize) {
    if keep_last > 0
        && let Json::String(s) = v
    {
        let n = if s.is_ascii() {
            s.len()
        } else {
            s.chars().count()
        };
        if n > keep_last {
            let hidden = n - keep_last;
            let cut = if s.is_ascii() {
                hidden
            } else {
                s.char_indices().nth(hidden).map_or(s.len(), |(i, _)| i)
            };
            let fill = with.as_str().and_then(|w| w.chars().next()).unwrap_or('*');
            let mut out = String::with_capacity(hidden * fill.len_utf8() + s.len() - cut);
            out.extend(std::iter::repeat_n(fill, hidden));
            out.push_str(&s[cut..]);
            *s = out;
            return;
        }
    }
    *v = with.clone();
}

fn hash_value(v: &mut Json, salt: &[u8]) {
    let mut h = Sha256::new();
    h.update(salt);
    match &*v {
        Json::String(s) => h.update(s.as_bytes()),
        other => h.update(other.to_string().as_bytes()),
    }
    *v = Json::String(hex::encode(h.finalize()));
}

impl FieldsTransform {
    /// True when some operation would change this value (a path it names is there), so that a
    /// value none of them touches is not re-serialised.
    fn changes(&self, v: &Json) -> bool {
        if let Some(proj) = &self.include {
            return proj.apply(v).as_ref() != Some(v);
        }
        let mut found = Vec::new();
        let value_paths = self
            .exclude
            .iter()
            .filter(|p| p.root == Root::Value)
            .map(|p| &p.segments[..])
            .chain(self.rename.iter().map(|(from, _)| &from[..]))
            .chain(self.mask.iter().map(|s| &s[..]))
            .chain(self.hash.iter().map(|s| &s[..]));
        for segs in value_paths {
            path::get_all(v, segs, &mut found);
            if !found.is_empty() {
                return true;
            }
        }
        false
    }
}

impl Transform for FieldsTransform {
    fn apply(&self, record: &mut Record) -> Result<Flow, TransformError> {
        for p in &self.exclude {
            match &p.root {
                Root::Header(name) => record.headers.retain(|h| &h.name != name),
                Root::Key => record.key = None,
                Root::Value => {}
            }
        }
        let touches_value = self.include.is_some()
            || self.exclude.iter().any(|p| p.root == Root::Value)
            || !self.rename.is_empty()
            || !self.mask.is_empty()
            || !self.hash.is_empty();
        if !touches_value || !self.changes(record.value.json()?) {
            // Nothing to change: the value keeps its original bytes.
            return Ok(Flow::Keep);
        }
        let v = record.value.json_mut()?;
        if let Some(proj) = &self.include {
            *v = proj
                .apply(v)
                .unwrap_or_else(|| Json::Object(Default::default()));
        }
        for p in self.exclude.iter().filter(|p| p.root == Root::Value) {
            path::remove(v, &p.segments);
        }
        for (from, to) in &self.rename {
            if let Some(taken) = path::remove(v, from).pop() {
                path::insert(v, to, taken)
                    .map_err(|e| TransformError::Fatal(format!("rename: {e}")))?;
            }
        }
        for segs in &self.mask {
            path::for_each_mut(v, segs, &mut |x| {
                mask_value(x, &self.mask_with, self.keep_last)
            });
        }
        for segs in &self.hash {
            path::for_each_mut(v, segs, &mut |x| hash_value(x, &self.salt));
        }
        Ok(Flow::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_core::config::{Node, from_node};
    use weir_core::{BuildContext, PluginConfig};

    fn build(yaml: &str) -> Result<Box<dyn Transform>, weir_core::BuildError> {
        let n: Node = serde_saphyr_free_parse(yaml);
        let c: FieldsTransformConfig = from_node(&n, "").unwrap();
        c.build(&BuildContext::for_test("p", "c"))
    }

    fn serde_saphyr_free_parse(yaml: &str) -> Node {
        weir_core::config::load::parse_yaml(&weir_core::config::SourceFile::new("t", yaml)).unwrap()
    }

    fn run(t: &dyn Transform, v: Json) -> Json {
        let mut r = Record::from_json(v);
        t.apply(&mut r).unwrap();
        r.value.parsed().unwrap().clone()
    }

    #[test]
    fn masks_card_numbers_keeping_the_last_four_and_wildcards_reach_arrays() {
        let t = build("mask: [value.card.number, value.items.*.secret]\nkeep_last: 4\n").unwrap();
        let out = run(
            &*t,
            json!({"card":{"number":"4111111111111111"},"items":[{"secret":"abcdef"},{"secret":"xy"}]}),
        );
        assert_eq!(
            out,
            json!({"card":{"number":"************1111"},"items":[{"secret":"**cdef"},{"secret":"****"}]})
        );
    }

    #[test]
    fn keep_last_counts_characters_not_bytes() {
        let t = build("mask: [value.name]\nkeep_last: 2\nmask_with: \"#\"\n").unwrap();
        assert_eq!(
            run(&*t, json!({"name": "Zoë Ærø"})),
            json!({"name": "#####rø"})
        );
        assert_eq!(
            run(&*t, json!({"name": "ab"})),
            json!({"name": "#"}),
            "too short to keep anything: fully masked"
        );
    }

    #[test]
    fn include_exclude_rename() {
        let t = build("include: [value.id, value.user, 'value.items[*].sku']\nexclude: [value.user.ssn]\nrename: { value.user.name: value.customer }\n").unwrap();
        let out = run(
            &*t,
            json!({"id":1,"user":{"name":"Ann","ssn":"123"},"items":[{"sku":"a","cost":1}],"drop":true}),
        );
        assert_eq!(
            out,
            json!({"id":1,"user":{},"items":[{"sku":"a"}],"customer":"Ann"})
        );
    }

    #[test]
    fn hash_is_salted_sha256_and_deterministic() {
        let t = build("hash: [value.email]\nhash_salt: pepper\n").unwrap();
        let out = run(&*t, json!({"email":"a@b.c"}));
        // From another tool: `printf 'peppera@b.c' | sha256sum`.
        assert_eq!(
            out["email"],
            json!("0430ccee28a2ef77a5405f545d9fdcd5f34a6a949517df97fd8722289ffa1f33")
        );
        assert_eq!(run(&*t, json!({"email":"a@b.c"})), out);
    }

    #[test]
    fn bad_options_are_build_errors_with_paths() {
        let e = build("mask: [card.number]\n").err().unwrap();
        assert_eq!(e.path, "mask[0]");
        assert!(
            e.message.contains("paths start at `value`"),
            "{}",
            e.message
        );
        let e = build("hash: [value.email]\n").err().unwrap();
        assert!(e.message.contains("hash_salt"), "{}", e.message);
        let e = build("rename: { 'value.items[*].a': value.b }\n")
            .err()
            .unwrap();
        assert!(e.message.contains("wildcard"), "{}", e.message);
        assert!(build("{}").err().unwrap().message.contains("nothing to do"));
    }

    #[test]
    fn exclude_header() {
        let t = build("exclude: [headers.secret]\n").unwrap();
        let mut r = Record::from_json(json!({}));
        r.set_header("secret", "x");
        r.set_header("ok", "y");
        t.apply(&mut r).unwrap();
        assert_eq!(r.headers.len(), 1);
        assert!(r.value.parsed().is_some(), "value untouched");
    }
}

//! `fields`: include / exclude / rename / mask / hash fields by path, with wildcards into arrays
//! (PII filtering; Kafka Connect's ReplaceField and MaskField).

mod config;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use weir_core::json::{
    Scalar, ScanError, Slot, Slots, Splice, Wanted, key_path, scalar, scan_value,
};
use weir_core::path::{self, FieldPath, Projection, Root, Segment};
use weir_core::{Flow, Record, Transform, TransformError};

pub use config::FieldsTransformConfig;

/// How `exclude`, `mask` and `hash` edit a value's bytes without a tree: possible when every
/// value path is a chain of keys and none is inside another (so the edits cannot overlap).
/// `include`, `rename`, wildcards and indexes take the tree path.
struct SplicePlan {
    wanted: Wanted,
    /// (node, parent node) of each excluded member.
    exclude: Vec<(u32, u32)>,
    mask: Vec<u32>,
    hash: Vec<u32>,
    /// `mask_with` as JSON text.
    mask_with_text: Vec<u8>,
    /// The character `keep_last` fills with, as UTF-8, when it needs no escaping in JSON
    /// (`None`: the masked text goes through [`write_json_str`]).
    plain_fill: Option<Box<[u8]>>,
}

impl SplicePlan {
    fn new(t: &FieldsTransform) -> Option<SplicePlan> {
        if t.include.is_some() || !t.rename.is_empty() {
            return None;
        }
        let excluded: Vec<&[Segment]> = t
            .exclude
            .iter()
            .filter(|p| p.root == Root::Value)
            .map(|p| &p.segments[..])
            .collect();
        let all: Vec<&[Segment]> = excluded
            .iter()
            .copied()
            .chain(t.mask.iter().map(|s| &s[..]))
            .chain(t.hash.iter().map(|s| &s[..]))
            .collect();
        for (i, a) in all.iter().enumerate() {
            if a.is_empty() || key_path(a).is_none() {
                return None;
            }
            if all[i + 1..]
                .iter()
                .any(|b| a.starts_with(b) || b.starts_with(a))
            {
                return None;
            }
        }
        let mut wanted = Wanted::new();
        let mut node = |segs: &[Segment]| wanted.path(key_path(segs).expect("checked"));
        let exclude = excluded
            .iter()
            .map(|s| (node(s), node(&s[..s.len() - 1])))
            .collect();
        let mask = t.mask.iter().map(|s| node(s)).collect();
        let hash = t.hash.iter().map(|s| node(s)).collect();
        Some(SplicePlan {
            wanted,
            exclude,
            mask,
            hash,
            mask_with_text: serde_json::to_vec(&t.mask_with).expect("JSON serializes"),
            plain_fill: {
                let fill = fill_char(&t.mask_with).to_string();
                fill.bytes()
                    .all(|c| c >= 0x20 && c != b'"' && c != b'\\')
                    .then(|| fill.into_bytes().into_boxed_slice())
            },
        })
    }
}

/// The compiled field operations, applied in the order include, exclude, rename, mask, hash.
pub struct FieldsTransform {
    splice: Option<SplicePlan>,
    include: Option<Projection>,
    exclude: Vec<FieldPath>,
    rename: Vec<(Vec<Segment>, Vec<Segment>)>,
    mask: Vec<Vec<Segment>>,
    mask_with: Json,
    keep_last: usize,
    hash: Vec<Vec<Segment>>,
    salt: Vec<u8>,
}

/// A string with all but its last `keep_last` characters replaced by `mask_with`'s first
/// character, or `None` when it is too short to keep anything (it is then masked whole).
fn keep_last_of(s: &str, with: &Json, keep_last: usize) -> Option<String> {
    let n = if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    };
    if n <= keep_last {
        return None;
    }
    let hidden = n - keep_last;
    let cut = if s.is_ascii() {
        hidden
    } else {
        s.char_indices().nth(hidden).map_or(s.len(), |(i, _)| i)
    };
    let fill = fill_char(with);
    let mut out = String::with_capacity(hidden * fill.len_utf8() + s.len() - cut);
    out.extend(std::iter::repeat_n(fill, hidden));
    out.push_str(&s[cut..]);
    Some(out)
}

/// The character `keep_last` masks with: `mask_with`'s first, or `*`.
fn fill_char(with: &Json) -> char {
    with.as_str().and_then(|w| w.chars().next()).unwrap_or('*')
}

/// [`keep_last_of`] written as JSON text straight from a scanned string's content, for content
/// without escapes (so every byte is the character's own UTF-8) and a fill that needs no
/// escaping: `false` when the string is too short to keep anything.
fn write_keep_last(buf: &mut Vec<u8>, content: &[u8], fill: &[u8], keep_last: usize) -> bool {
    let ascii = content.is_ascii();
    // Valid UTF-8: one character per byte that does not continue a sequence.
    let n = if ascii {
        content.len()
    } else {
        content.iter().filter(|&&c| c & 0xC0 != 0x80).count()
    };
    if n <= keep_last {
        return false;
    }
    let hidden = n - keep_last;
    let cut = if ascii {
        hidden
    } else {
        content
            .iter()
            .enumerate()
            .filter(|(_, c)| **c & 0xC0 != 0x80)
            .nth(hidden)
            .map_or(content.len(), |(i, _)| i)
    };
    buf.reserve(hidden * fill.len() + content.len() - cut + 2);
    buf.push(b'"');
    if let [one] = fill {
        buf.resize(buf.len() + hidden, *one);
    } else {
        for _ in 0..hidden {
            buf.extend_from_slice(fill);
        }
    }
    // No escapes and no raw control characters (a scan validated it): the tail is written as
    // serde_json writes it.
    buf.extend_from_slice(&content[cut..]);
    buf.push(b'"');
    true
}

fn mask_value(v: &mut Json, with: &Json, keep_last: usize) {
    if keep_last > 0
        && let Json::String(s) = v
        && let Some(masked) = keep_last_of(s, with, keep_last)
    {
        *s = masked;
        return;
    }
    *v = with.clone();
}

fn hash_hex(salt: &[u8], text: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(text);
    hex::encode(h.finalize())
}

fn hash_value(v: &mut Json, salt: &[u8]) {
    let hex = match &*v {
        Json::String(s) => hash_hex(salt, s.as_bytes()),
        other => hash_hex(salt, other.to_string().as_bytes()),
    };
    *v = Json::String(hex);
}

/// Writes a string as JSON text, escaped as serde_json writes it (which escapes only `"`, `\`
/// and control characters).
fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\') {
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        serde_json::to_writer(buf, s).expect("strings serialize");
    }
}

impl FieldsTransform {
    /// Edits the value's bytes; false when they cannot be spliced (not held as bytes, not
    /// valid JSON, a named key repeated) and the tree path must run.
    fn apply_spliced(&self, plan: &SplicePlan, record: &mut Record) -> bool {
        let mut slots = Slots::for_wanted(&plan.wanted);
        match scan_value(&mut record.value, &plan.wanted, slots.slots_mut()) {
            Some(Ok(info)) if !info.duplicate => {}
            // The tree path has serde_json's error, and serde_json's last-wins for duplicates.
            Some(Ok(_) | Err(ScanError::Invalid | ScanError::Unsupported)) | None => return false,
        }
        let doc = &record.value.bytes().expect("scanned bytes")[..];
        let slots = slots.slots();
        let mut edits = Splice::new(doc);
        self.splice_excludes(plan, slots, &mut edits);
        for &n in &plan.mask {
            let s = slots[n as usize];
            if !s.is_found() {
                continue;
            }
            let v = s.value(doc);
            if self.keep_last > 0
                && let Some(fill) = &plan.plain_fill
                && v[0] == b'"'
                && !v[1..v.len() - 1].contains(&b'\\')
            {
                let content = &v[1..v.len() - 1];
                edits.replace_with(s.start, s.end, |b| {
                    if !write_keep_last(b, content, fill, self.keep_last) {
                        b.extend_from_slice(&plan.mask_with_text);
                    }
                });
                continue;
            }
            let kept = match scalar(v) {
                Some(Scalar::String(text)) if self.keep_last > 0 => {
                    keep_last_of(&text, &self.mask_with, self.keep_last)
                }
                _ => None,
            };
            match kept {
                Some(m) => edits.replace_with(s.start, s.end, |b| write_json_str(b, &m)),
                None => edits.replace(s.start, s.end, &plan.mask_with_text),
            }
        }
        for &n in &plan.hash {
            let s = slots[n as usize];
            if !s.is_found() {
                continue;
            }
            let v = s.value(doc);
            let hex = match scalar(v) {
                Some(Scalar::String(text)) => hash_hex(&self.salt, text.as_bytes()),
                // As the tree path hashes it: the value's compact serialization.
                _ => {
                    let j: Json = serde_json::from_slice(v).expect("a scanned value is valid");
                    hash_hex(&self.salt, j.to_string().as_bytes())
                }
            };
            edits.replace_with(s.start, s.end, |b| write_json_str(b, &hex));
        }
        if let Some(out) = edits.finish() {
            record.value.set_spliced(out);
        }
        true
    }

    /// Removes excluded members. Members of one object that follow each other go as one run; a
    /// run that ends the object takes the comma before it, any other run the comma after it.
    fn splice_excludes(&self, plan: &SplicePlan, slots: &[Slot], edits: &mut Splice<'_>) {
        let doc = edits.doc();
        let mut found: Vec<(u32, Slot)> = plan
            .exclude
            .iter()
            .map(|&(n, parent)| (parent, slots[n as usize]))
            .filter(|(_, s)| s.is_found())
            .collect();
        if found.is_empty() {
            return;
        }
        found.sort_by_key(|(parent, s)| (*parent, s.key));
        let mut i = 0;
        while i < found.len() {
            let (parent, first) = found[i];
            let mut last = first;
            i += 1;
            while i < found.len() && found[i].0 == parent && found[i].1.key == last.next {
                last = found[i].1;
                i += 1;
            }
            if doc[last.next as usize] == b'"' {
                edits.remove(first.key, last.next);
            } else {
                edits.remove(first.prev, last.end);
            }
        }
    }

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
        if !touches_value {
            return Ok(Flow::Keep);
        }
        if let Some(plan) = &self.splice
            && self.apply_spliced(plan, record)
        {
            return Ok(Flow::Keep);
        }
        if !self.changes(record.value.json()?) {
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

    /// JSON text over a few keys (duplicates included), with escapes, odd spacing and numbers
    /// a re-serialization would rewrite.
    fn doc_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "\"card\"",
            "\"number\"",
            "\"a\"",
            "\"b\"",
            "\"\\u0061\"",
        ]);
        let leaf = prop::sample::select(vec![
            "null",
            "true",
            "1E5",
            "-0.50",
            "12345678901234567890123",
            "\"4111111111111111\"",
            "\"Zoë Ærø\"",
            "\"a\\\"b\\u00e9\"",
            "\"\"",
            "\"xy\"",
            "[1, \"s\"]",
            "{}",
        ])
        .prop_map(str::to_owned);
        leaf.prop_recursive(3, 24, 4, move |inner| {
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|m| {
                let body: Vec<String> = m.iter().map(|(k, v)| format!("{k} :{v}")).collect();
                format!("{{ {} }}", body.join(" ,"))
            })
        })
    }

    fn spliced_and_tree(
        t: &dyn Transform,
        doc: &str,
    ) -> (Result<Vec<u8>, String>, Result<Vec<u8>, String>) {
        let mut fast = Record::from_bytes(doc.as_bytes().to_vec());
        let fast = t
            .apply(&mut fast)
            .map(|_| fast.value.to_bytes().to_vec())
            .map_err(|e| e.to_string());
        // The tree path as it ran before: decode, change, serialize.
        let tree = match serde_json::from_slice::<Json>(doc.as_bytes()) {
            Ok(j) => {
                let mut r = Record::from_json(j);
                t.apply(&mut r)
                    .map(|_| r.value.to_bytes().to_vec())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(weir_core::record::DecodeError(e.to_string()).to_string()),
        };
        (fast, tree)
    }

    fn reserialized(bytes: &[u8]) -> String {
        serde_json::from_slice::<Json>(bytes).unwrap().to_string()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1500))]

        #[test]
        fn splicing_gives_what_decode_change_serialize_gives(
            doc in doc_text(),
            exclude in proptest::sample::subsequence(vec!["value.b", "value.card.a", "value.a.b"], 0..3),
            mask in proptest::sample::subsequence(vec!["value.card.number", "value.a.a", "value.number"], 0..3),
            hash in proptest::sample::subsequence(vec!["value.card.b", "value.a.card"], 0..2),
            keep_last in 0usize..6,
            // A fill of `"` or a tab needs escaping; `é` is two bytes.
            mask_with in proptest::sample::select(vec!["\"****\"", "\"#\"", "0", "null", "\"é\"", "\"\\\"x\"", "\"\\tx\""]),
        ) {
            proptest::prop_assume!(!exclude.is_empty() || !mask.is_empty() || !hash.is_empty());
            let yaml = format!(
                "exclude: {exclude:?}\nmask: {mask:?}\nhash: {hash:?}\nhash_salt: s\nkeep_last: {keep_last}\nmask_with: {mask_with}\n"
            );
            let t = build(&yaml).unwrap();
            let (fast, tree) = spliced_and_tree(&*t, &doc);
            let original_tree = serde_json::from_str::<Json>(&doc).unwrap();
            let touched = exclude.iter().chain(&mask).chain(&hash).any(|p| {
                path::get(&original_tree, &FieldPath::parse(p).unwrap().segments).is_some()
            });
            // Same members, same values, same key order.
            proptest::prop_assert_eq!(reserialized(fast.as_ref().unwrap()), reserialized(tree.as_ref().unwrap()), "{}", yaml);
            if !touched {
                // A value no path reaches keeps its bytes exactly.
                proptest::prop_assert_eq!(fast.as_ref().unwrap().as_slice(), doc.as_bytes());
            }
            // Malformed: the same error.
            let cut = &doc[..doc.len() - 1];
            let (fast, tree) = spliced_and_tree(&*t, cut);
            proptest::prop_assert_eq!(fast, tree);
        }
    }

    #[test]
    fn splices_keep_every_byte_they_do_not_edit() {
        let t = build("exclude: [value.cvv]\nmask: [value.card.number]\nkeep_last: 4\n").unwrap();
        let doc = r#"{ "id" : 12345678901234567890123, "card": {"number":"4111 1111 1111 1234" , "exp":1E5},"cvv":"123",  "name":"Zo\u00eb" }"#;
        let mut r = Record::from_bytes(doc.as_bytes().to_vec());
        t.apply(&mut r).unwrap();
        assert!(r.value.parsed().is_none(), "splicing builds no tree");
        // Expected by editing the text by hand: the number masked, the cvv member and its comma gone.
        let want = doc
            .replace(r#""4111 1111 1111 1234""#, r#""***************1234""#)
            .replace(r#""cvv":"123",  "#, "");
        assert_eq!(std::str::from_utf8(&r.value.to_bytes()).unwrap(), want);
        assert!(r.value.is_modified());
        assert_eq!(
            r.value.original().unwrap().as_ref(),
            doc.as_bytes(),
            "the original stays for dead letters"
        );
    }

    #[test]
    fn malformed_values_fail_as_they_did_when_decoded() {
        let t = build("mask: [value.card.number]\n").unwrap();
        let deep = format!("{{\"z\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        for doc in [
            r#"{"card": {"number": "4111"}, "b": nope}"#.to_owned(),
            "{\"card\": {\"number\": \"4111\"}} x".to_owned(),
            r#"{"card": {"number": "\ud800"}}"#.to_owned(),
            deep,
        ] {
            let mut r = Record::from_bytes(doc.clone().into_bytes());
            let err = t.apply(&mut r).unwrap_err().to_string();
            let decoded = serde_json::from_str::<Json>(&doc).unwrap_err().to_string();
            assert_eq!(err, format!("value is not valid JSON: {decoded}"));
            assert_eq!(
                r.value.to_bytes().as_ref(),
                doc.as_bytes(),
                "a failed record keeps its bytes"
            );
        }
        // Not UTF-8 inside a string.
        let bad = b"{\"card\": {\"number\": \"41\xff1\"}}".to_vec();
        let mut r = Record::from_bytes(bad.clone());
        let err = t.apply(&mut r).unwrap_err().to_string();
        assert!(err.contains("invalid unicode code point"), "{err}");
        // Duplicate keys: the tree path's answer (one member, the last value, masked), not a
        // splice of only the last copy that would leave the first card number readable.
        let dup =
            r#"{"card": {"number": "4111111111111111"}, "card": {"number": "5500000000000004"}}"#;
        let mut r = Record::from_bytes(dup.as_bytes().to_vec());
        t.apply(&mut r).unwrap();
        assert_eq!(
            std::str::from_utf8(&r.value.to_bytes()).unwrap(),
            r#"{"card":{"number":"****"}}"#
        );
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

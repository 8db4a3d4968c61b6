//! EventBridge event patterns, compiled once and matched against JSON.
//!
//! Supported: exact strings, numbers, booleans and null, empty strings, value lists (OR), AND across
//! fields, nested objects, arrays in the event (any element matches), `prefix`, `suffix`,
//! `equals-ignore-case` (alone and inside `prefix`/`suffix`), `anything-but` (value, list, and the
//! `prefix`/`suffix`/`equals-ignore-case`/`wildcard` forms), `exists`, `numeric` ranges,
//! `wildcard`, `cidr` (IPv4 and IPv6) and `$or`.

use std::borrow::Cow;
use std::net::IpAddr;

use std::cmp::Ordering;

use ipnet::IpNet;
use serde_json::{Map, Value as Json};
use weir_core::json::{Kind, Scalar, Slot, Wanted, kind, scalar};

use super::number;

/// A pattern that does not compile; `path` is relative to the pattern root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// Where in the pattern (`value.amount[0]`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

type R<T> = Result<T, PatternError>;

fn err<T>(path: &str, message: impl Into<String>) -> R<T> {
    Err(PatternError {
        path: path.to_owned(),
        message: message.into(),
    })
}

/// A compiled object pattern: every field rule must match, and one alternative of every `$or`.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Field name, rule, and the field's node in the filter's [`Wanted`] tree (for fields inside
    /// `value`; `u32::MAX` until [`Pattern::want`] assigned it).
    fields: Vec<(String, Rule, u32)>,
    ors: Vec<Vec<Pattern>>,
}

/// A value's bytes as a scan saw them: the document and the slots of the filter's wanted nodes.
#[derive(Debug, Clone, Copy)]
pub struct Scanned<'a> {
    /// The document.
    pub doc: &'a [u8],
    /// One slot per node of the [`Wanted`] tree the scan used.
    pub slots: &'a [Slot],
}

impl Scanned<'_> {
    fn get(&self, node: u32) -> Option<&[u8]> {
        let s = self.slots[node as usize];
        s.is_found().then(|| s.value(self.doc))
    }

    /// The member at `node` decoded as a tree (for the rare arrays a rule meets).
    fn tree(&self, node: u32) -> Option<Json> {
        self.get(node)
            .map(|v| serde_json::from_slice(v).expect("a scanned value is valid JSON"))
    }
}

/// The record value a pattern is matched against.
#[derive(Debug, Clone, Copy)]
pub enum ValueView<'a> {
    /// Decoded already (or absent).
    Tree(Option<&'a Json>),
    /// Its bytes, scanned for the members the patterns name.
    Scanned(Scanned<'a>),
}

#[derive(Debug, Clone)]
enum Rule {
    Nested(Pattern),
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(Json),
    Prefix {
        text: String,
        ignore_case: bool,
    },
    Suffix {
        text: String,
        ignore_case: bool,
    },
    EqualsIgnoreCase(String),
    AnythingBut(AnythingBut),
    /// Conditions with their bounds (parsed once), compared exactly.
    Numeric(Vec<(Op, number::Bound)>),
    Exists(bool),
    Wildcard(Wildcard),
    Cidr(IpNet),
}

#[derive(Debug, Clone)]
enum AnythingBut {
    Values(Vec<Json>),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A wildcard string: `*` matches any run of characters, `\*` a literal star, `\\` a backslash.
#[derive(Debug, Clone)]
struct Wildcard {
    /// Literal pieces between stars.
    pieces: Vec<String>,
}

impl Pattern {
    /// Compiles a pattern object.
    pub fn compile(json: &Json) -> R<Pattern> {
        compile_object(json, "")
    }

    /// The top-level field names the pattern looks at (to know whether the value must be decoded).
    pub fn top_fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _, _)| k.as_str()).chain(
            self.ors
                .iter()
                .flatten()
                .flat_map(|p| p.top_fields().collect::<Vec<_>>()),
        )
    }

    /// Matches an object whose fields come from `lookup` (the event view at the top level).
    pub fn matches_with<'a>(&self, lookup: &dyn Fn(&str) -> Option<Cow<'a, Json>>) -> bool {
        self.fields
            .iter()
            .all(|(k, rule, _)| rule.matches(lookup(k).as_deref()))
            && self
                .ors
                .iter()
                .all(|alts| alts.iter().any(|p| p.matches_with(lookup)))
    }

    /// Adds the members this event-level pattern reads inside `value` to `wanted`, so that a
    /// scan of the value's bytes finds them (see [`Pattern::matches_event`]).
    pub fn want(&mut self, wanted: &mut Wanted) {
        for (k, rule, node) in &mut self.fields {
            if k == "value" {
                *node = Wanted::ROOT;
                if let Rule::Nested(p) = rule {
                    p.want_below(wanted, Wanted::ROOT);
                }
            }
        }
        for alt in self.ors.iter_mut().flatten() {
            alt.want(wanted);
        }
    }

    fn want_below(&mut self, wanted: &mut Wanted, parent: u32) {
        for (k, rule, node) in &mut self.fields {
            *node = wanted.child(parent, k);
            if let Rule::Nested(p) = rule {
                p.want_below(wanted, *node);
            }
        }
        for alt in self.ors.iter_mut().flatten() {
            alt.want_below(wanted, parent);
        }
    }

    /// Matches the event: `value` from `value`, the other top-level fields from `meta`. A
    /// scanned value must have been scanned with the tree [`Pattern::want`] filled.
    pub fn matches_event<'a>(
        &self,
        value: ValueView<'_>,
        meta: &dyn Fn(&str) -> Option<Cow<'a, Json>>,
    ) -> bool {
        self.fields.iter().all(|(k, rule, _)| {
            if k == "value" {
                match value {
                    ValueView::Tree(v) => rule.matches(v),
                    ValueView::Scanned(s) => rule.matches_scanned(&s, Wanted::ROOT),
                }
            } else {
                rule.matches(meta(k).as_deref())
            }
        }) && self
            .ors
            .iter()
            .all(|alts| alts.iter().any(|p| p.matches_event(value, meta)))
    }

    /// Matches the object whose members' nodes are this pattern's fields.
    fn matches_scanned(&self, s: &Scanned<'_>) -> bool {
        self.fields
            .iter()
            .all(|(_, rule, node)| rule.matches_scanned(s, *node))
            && self
                .ors
                .iter()
                .all(|alts| alts.iter().any(|p| p.matches_scanned(s)))
    }

    /// Matches a JSON object.
    pub fn matches(&self, json: &Json) -> bool {
        let empty = Map::new();
        let obj = json.as_object().unwrap_or(&empty);
        self.matches_with(&|k| obj.get(k).map(Cow::Borrowed))
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn compile_object(json: &Json, path: &str) -> R<Pattern> {
    let Json::Object(m) = json else {
        return err(
            path,
            format!("a pattern is an object of fields, found {}", describe(json)),
        );
    };
    let mut fields = Vec::new();
    let mut ors = Vec::new();
    for (k, v) in m {
        let p = child(path, k);
        if k == "$or" {
            let Json::Array(alts) = v else {
                return err(&p, "`$or` takes a list of patterns");
            };
            if alts.len() < 2 {
                return err(&p, "`$or` needs at least two patterns");
            }
            ors.push(
                alts.iter()
                    .enumerate()
                    .map(|(i, a)| compile_object(a, &format!("{p}[{i}]")))
                    .collect::<R<Vec<_>>>()?,
            );
            continue;
        }
        let rule = match v {
            Json::Object(_) => Rule::Nested(compile_object(v, &p)?),
            Json::Array(items) => {
                if items.is_empty() {
                    return err(
                        &p,
                        "an empty list matches nothing: list at least one value or matcher",
                    );
                }
                Rule::Leaf(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, it)| compile_matcher(it, &format!("{p}[{i}]")))
                        .collect::<R<_>>()?,
                )
            }
            other => {
                return err(
                    &p,
                    format!(
                        "field values in a pattern are lists, e.g. [{other}], or nested objects; found {}",
                        describe(other)
                    ),
                );
            }
        };
        fields.push((k.clone(), rule, u32::MAX));
    }
    if fields.is_empty() && ors.is_empty() {
        return err(
            path,
            "an empty pattern object matches nothing useful: name at least one field",
        );
    }
    Ok(Pattern { fields, ors })
}

fn describe(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

fn string_or_ic(v: &Json, path: &str, op: &str) -> R<(String, bool)> {
    match v {
        Json::String(s) => Ok((s.clone(), false)),
        Json::Object(m) if m.len() == 1 => match m.get("equals-ignore-case") {
            Some(Json::String(s)) => Ok((s.to_lowercase(), true)),
            _ => err(
                path,
                format!("`{op}` takes a string or {{\"equals-ignore-case\": \"...\"}}"),
            ),
        },
        _ => err(
            path,
            format!("`{op}` takes a string or {{\"equals-ignore-case\": \"...\"}}"),
        ),
    }
}

fn strings(v: &Json, path: &str, op: &str) -> R<Vec<String>> {
    match v {
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_owned).ok_or_else(|| PatternError {
                    path: path.into(),
                    message: format!("`{op}` lists only strings"),
                })
            })
            .collect(),
        _ => err(
            path,
            format!("`{op}` takes a string or a non-empty list of strings"),
        ),
    }
}

fn compile_matcher(item: &Json, path: &str) -> R<Matcher> {
    let m = match item {
        Json::Object(m) => m,
        Json::Array(_) => return err(path, "a list inside a value list is not a matcher"),
        scalar => return Ok(Matcher::Exact(scalar.clone())),
    };
    if m.len() != 1 {
        return err(
            path,
            "a matcher object has exactly one operator, e.g. {\"prefix\": \"eu-\"}",
        );
    }
    let (op, v) = m.iter().next().expect("one entry");
    let p = child(path, op);
    Ok(match op.as_str() {
        "prefix" => {
            let (text, ignore_case) = string_or_ic(v, &p, "prefix")?;
            Matcher::Prefix { text, ignore_case }
        }
        "suffix" => {
            let (text, ignore_case) = string_or_ic(v, &p, "suffix")?;
            Matcher::Suffix { text, ignore_case }
        }
        "equals-ignore-case" => match v {
            Json::String(s) => Matcher::EqualsIgnoreCase(s.to_lowercase()),
            _ => return err(&p, "`equals-ignore-case` takes a string"),
        },
        "exists" => match v {
            Json::Bool(b) => Matcher::Exists(*b),
            _ => return err(&p, "`exists` takes true or false"),
        },
        "wildcard" => match v {
            Json::String(s) => Matcher::Wildcard(Wildcard::compile(s, &p)?),
            _ => return err(&p, "`wildcard` takes a string such as \"*.png\""),
        },
        "cidr" => match v {
            Json::String(s) => Matcher::Cidr(parse_cidr(s).ok_or_else(|| PatternError {
                path: p.clone(),
                message: format!("{s:?} is not an IPv4 or IPv6 CIDR block such as \"10.0.0.0/24\""),
            })?),
            _ => return err(&p, "`cidr` takes a string such as \"10.0.0.0/24\""),
        },
        "numeric" => Matcher::Numeric(
            compile_numeric(v, &p)?
                .into_iter()
                .map(|(op, text)| (op, number::Bound::new(text).expect("a checked number")))
                .collect(),
        ),
        "anything-but" => Matcher::AnythingBut(compile_anything_but(v, &p)?),
        other => {
            let known = [
                "prefix",
                "suffix",
                "equals-ignore-case",
                "anything-but",
                "numeric",
                "exists",
                "wildcard",
                "cidr",
            ];
            let hint = weir_core::config::did_you_mean(other, known)
                .map(|s| format!(", did you mean `{s}`?"))
                .unwrap_or_default();
            return err(
                path,
                format!(
                    "unknown matcher `{other}`{hint} (known: {})",
                    known.join(", ")
                ),
            );
        }
    })
}

fn compile_anything_but(v: &Json, path: &str) -> R<AnythingBut> {
    Ok(match v {
        Json::String(_) | Json::Number(_) => AnythingBut::Values(vec![v.clone()]),
        Json::Array(a) => {
            if a.is_empty() {
                return err(path, "`anything-but` needs at least one value");
            }
            let all_str = a.iter().all(Json::is_string);
            let all_num = a.iter().all(Json::is_number);
            if !all_str && !all_num {
                return err(path, "`anything-but` lists only strings or only numbers");
            }
            AnythingBut::Values(a.clone())
        }
        Json::Object(m) if m.len() == 1 => {
            let (op, inner) = m.iter().next().expect("one entry");
            let p = child(path, op);
            match op.as_str() {
                "prefix" => AnythingBut::Prefix(
                    inner
                        .as_str()
                        .ok_or_else(|| PatternError {
                            path: p.clone(),
                            message: "`prefix` takes a string".into(),
                        })?
                        .to_owned(),
                ),
                "suffix" => AnythingBut::Suffix(
                    inner
                        .as_str()
                        .ok_or_else(|| PatternError {
                            path: p.clone(),
                            message: "`suffix` takes a string".into(),
                        })?
                        .to_owned(),
                ),
                "equals-ignore-case" => AnythingBut::EqualsIgnoreCase(
                    strings(inner, &p, "equals-ignore-case")?
                        .into_iter()
                        .map(|s| s.to_lowercase())
                        .collect(),
                ),
                "wildcard" => AnythingBut::Wildcard(
                    strings(inner, &p, "wildcard")?
                        .iter()
                        .map(|s| Wildcard::compile(s, &p))
                        .collect::<R<_>>()?,
                ),
                other => {
                    return err(
                        &p,
                        format!(
                            "`anything-but` cannot take `{other}` (it takes a value, a list, prefix, suffix, equals-ignore-case or wildcard)"
                        ),
                    );
                }
            }
        }
        _ => {
            return err(
                path,
                "`anything-but` takes a string, a number, a list, or {prefix|suffix|equals-ignore-case|wildcard: ...}",
            );
        }
    })
}

fn compile_numeric(v: &Json, path: &str) -> R<Vec<(Op, String)>> {
    let Json::Array(a) = v else {
        return err(path, "`numeric` takes a list such as [\">\", 0, \"<=\", 5]");
    };
    if a.is_empty() || a.len() % 2 != 0 || a.len() > 4 {
        return err(
            path,
            "`numeric` takes one or two conditions: [\"<op>\", number] or [\">\", 0, \"<=\", 5]",
        );
    }
    let mut out = Vec::new();
    for pair in a.chunks(2) {
        let op = match pair[0].as_str() {
            Some("=") => Op::Eq,
            Some("<") => Op::Lt,
            Some("<=") => Op::Le,
            Some(">") => Op::Gt,
            Some(">=") => Op::Ge,
            _ => {
                return err(
                    path,
                    format!(
                        "`numeric` operator must be one of =, <, <=, >, >=; found {}",
                        pair[0]
                    ),
                );
            }
        };
        let Json::Number(n) = &pair[1] else {
            return err(
                path,
                format!(
                    "`numeric` needs a number after {:?}, found {}",
                    pair[0], pair[1]
                ),
            );
        };
        if !number::within_double_range(n.as_str()) {
            return err(
                path,
                format!(
                    "the bound {n} is beyond the supported range of numeric matching (±1.7976931348623157e308)"
                ),
            );
        }
        out.push((op, n.as_str().to_owned()));
    }
    if out.len() == 2 {
        let lower = out.iter().find(|(o, _)| matches!(o, Op::Gt | Op::Ge));
        let upper = out.iter().find(|(o, _)| matches!(o, Op::Lt | Op::Le));
        let (Some((lo_op, lo)), Some((hi_op, hi))) = (lower, upper) else {
            return err(
                path,
                "a `numeric` range has one lower bound (> or >=) and one upper bound (< or <=)",
            );
        };
        let order = number::compare(lo, hi).expect("bounds are numbers");
        let empty = order == Ordering::Greater
            || order == Ordering::Equal && (*lo_op == Op::Gt || *hi_op == Op::Lt);
        if empty {
            return err(
                path,
                format!(
                    "this range can never match: no number is {} {lo} and {} {hi}",
                    lo_op.symbol(),
                    hi_op.symbol()
                ),
            );
        }
    }
    Ok(out)
}

impl Op {
    /// True when a value that compares `o` to the bound satisfies the condition.
    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Wildcard {
    fn compile(s: &str, path: &str) -> R<Wildcard> {
        let mut pieces = vec![String::new()];
        let mut chars = s.chars().peekable();
        let mut last_star = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n @ ('*' | '\\')) => {
                        pieces.last_mut().expect("non-empty").push(n);
                        last_star = false;
                    }
                    _ => return err(path, format!("{s:?}: `\\` escapes only `*` or `\\`")),
                },
                '*' => {
                    if last_star {
                        return err(path, format!("{s:?}: consecutive `*` are not allowed"));
                    }
                    pieces.push(String::new());
                    last_star = true;
                }
                c => {
                    pieces.last_mut().expect("non-empty").push(c);
                    last_star = false;
                }
            }
        }
        Ok(Wildcard { pieces })
    }

    fn matches(&self, s: &str) -> bool {
        let n = self.pieces.len();
        if n == 1 {
            return s == self.pieces[0];
        }
        let (first, last) = (&self.pieces[0], &self.pieces[n - 1]);
        if s.len() < first.len() + last.len()
            || !s.starts_with(first.as_str())
            || !s.ends_with(last.as_str())
        {
            return false;
        }
        let mut rest = &s[first.len()..s.len() - last.len()];
        for piece in &self.pieces[1..n - 1] {
            match rest.find(piece.as_str()) {
                Some(i) => rest = &rest[i + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Equality as patterns see it: numbers by exact value (`300` is `300.0`), the rest as JSON.
fn num_eq(want: &Json, v: &Scalar<'_>) -> bool {
    match (want, v) {
        (Json::Number(x), Scalar::Number(y)) => {
            number::compare(x.as_str(), y) == Some(Ordering::Equal)
        }
        (Json::String(x), Scalar::String(y)) => x == y,
        (Json::Bool(x), Scalar::Bool(y)) => x == y,
        (Json::Null, Scalar::Null) => true,
        _ => false,
    }
}

/// A leaf of a decoded value as a scalar (`None` for arrays and objects).
fn tree_scalar(v: &Json) -> Option<Scalar<'_>> {
    Some(match v {
        Json::Null => Scalar::Null,
        Json::Bool(b) => Scalar::Bool(*b),
        Json::Number(n) => Scalar::Number(n.as_str()),
        Json::String(s) => Scalar::String(Cow::Borrowed(s)),
        Json::Array(_) | Json::Object(_) => return None,
    })
}

fn as_str<'s>(v: &'s Scalar<'_>) -> Option<&'s str> {
    match v {
        Scalar::String(s) => Some(s),
        _ => None,
    }
}

/// Calls `f` on `v`, or on every element of `v` and of arrays nested in it (EventBridge flattens
/// arrays of arrays when matching), until `f` returns true.
fn any_flattened<'a>(v: &'a Json, f: &mut dyn FnMut(&'a Json) -> bool) -> bool {
    let Json::Array(items) = v else {
        return f(v);
    };
    let mut stack: Vec<std::slice::Iter<'a, Json>> = vec![items.iter()];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            None => {
                stack.pop();
            }
            Some(Json::Array(inner)) => stack.push(inner.iter()),
            Some(x) => {
                if f(x) {
                    return true;
                }
            }
        }
    }
    false
}

impl Rule {
    fn matches(&self, value: Option<&Json>) -> bool {
        match self {
            Rule::Nested(p) => match value {
                Some(v @ (Json::Array(_) | Json::Object(_))) => {
                    any_flattened(v, &mut |i| i.is_object() && p.matches(i))
                }
                // Absent (or a leaf where an object was expected): only absence-tolerant rules match.
                _ => p.matches(&Json::Object(Map::new())),
            },
            Rule::Leaf(matchers) => {
                // The leaf values the field holds: itself, or the scalars of a (nested) array.
                let Some(value) = value.filter(|v| !v.is_object()) else {
                    return matchers.iter().any(|m| matches!(m, Matcher::Exists(false)));
                };
                let is_leaf = |v: &Json| !v.is_object() && !v.is_array();
                matchers.iter().any(|m| match m {
                    Matcher::Exists(want) => *want == any_flattened(value, &mut |v| is_leaf(v)),
                    m => any_flattened(value, &mut |v| {
                        tree_scalar(v).is_some_and(|s| m.matches(&s))
                    }),
                })
            }
        }
    }

    /// The same verdict as [`Rule::matches`] on the member at `node` of a scanned value,
    /// decoding only scalars (and, rarely, an array the rule meets).
    fn matches_scanned(&self, s: &Scanned<'_>, node: u32) -> bool {
        let v = s.get(node);
        match self {
            Rule::Nested(p) => match v.map(kind) {
                Some(Kind::Object) => p.matches_scanned(s),
                Some(Kind::Array) => self.matches(s.tree(node).as_ref()),
                _ => p.matches(&Json::Object(Map::new())),
            },
            Rule::Leaf(matchers) => match v {
                Some(b) if kind(b) == Kind::Scalar => {
                    // Decoded only for the matchers that cannot read the bytes.
                    let mut leaf = None;
                    matchers.iter().any(|m| match m {
                        Matcher::Exists(want) => *want,
                        m => m.matches_raw(b).unwrap_or_else(|| {
                            m.matches(leaf.get_or_insert_with(|| scalar(b).expect("a scalar")))
                        }),
                    })
                }
                Some(b) if kind(b) == Kind::Array => self.matches(s.tree(node).as_ref()),
                _ => matchers.iter().any(|m| matches!(m, Matcher::Exists(false))),
            },
        }
    }
}

/// The content of a scanned string without escapes: its bytes are the string's UTF-8.
fn plain_string(v: &[u8]) -> Option<&[u8]> {
    let inner = v.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    (!inner.contains(&b'\\')).then_some(inner)
}

fn is_number(v: &[u8]) -> bool {
    matches!(v.first(), Some(b'-' | b'0'..=b'9'))
}

/// Equality as [`num_eq`] sees it, on a scanned scalar's bytes; `None` when the bytes alone do
/// not tell (an escaped string).
fn raw_eq(want: &Json, v: &[u8]) -> Option<bool> {
    Some(match want {
        Json::Number(x) => {
            is_number(v) && number::compare_bytes(x.as_str().as_bytes(), v) == Some(Ordering::Equal)
        }
        Json::String(x) => match v.first() {
            Some(b'"') => plain_string(v)? == x.as_bytes(),
            _ => false,
        },
        Json::Bool(x) => v == if *x { &b"true"[..] } else { b"false" },
        Json::Null => v == b"null",
        Json::Array(_) | Json::Object(_) => false,
    })
}

impl Matcher {
    /// [`Matcher::matches`] on a scanned scalar's bytes without decoding them, for the
    /// matchers that compare values (exact, `anything-but` a list, `numeric`); `None` for the
    /// others and for escaped strings.
    fn matches_raw(&self, v: &[u8]) -> Option<bool> {
        match self {
            Matcher::Exact(want) => raw_eq(want, v),
            Matcher::Numeric(conds) => Some(
                is_number(v)
                    && conds.iter().all(|(op, bound)| {
                        number::compare_to_bound(v, bound).is_some_and(|o| op.holds(o))
                    }),
            ),
            Matcher::AnythingBut(AnythingBut::Values(vals)) => {
                if !(is_number(v) || v.first() == Some(&b'"')) {
                    return Some(false);
                }
                for x in vals {
                    if raw_eq(x, v)? {
                        return Some(false);
                    }
                }
                Some(true)
            }
            _ => None,
        }
    }

    fn matches(&self, v: &Scalar<'_>) -> bool {
        match self {
            Matcher::Exact(want) => num_eq(want, v),
            Matcher::Prefix { text, ignore_case } => as_str(v).is_some_and(|s| {
                if *ignore_case {
                    s.to_lowercase().starts_with(text.as_str())
                } else {
                    s.starts_with(text.as_str())
                }
            }),
            Matcher::Suffix { text, ignore_case } => as_str(v).is_some_and(|s| {
                if *ignore_case {
                    s.to_lowercase().ends_with(text.as_str())
                } else {
                    s.ends_with(text.as_str())
                }
            }),
            Matcher::EqualsIgnoreCase(want) => as_str(v).is_some_and(|s| s.to_lowercase() == *want),
            Matcher::Wildcard(w) => as_str(v).is_some_and(|s| w.matches(s)),
            Matcher::Cidr(net) => as_str(v)
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|ip| net.contains(&ip)),
            Matcher::Numeric(conds) => match v {
                Scalar::Number(x) => conds.iter().all(|(op, bound)| {
                    number::compare_to_bound(x.as_bytes(), bound).is_some_and(|o| op.holds(o))
                }),
                _ => false,
            },
            Matcher::Exists(_) => unreachable!("handled by Rule::matches"),
            Matcher::AnythingBut(ab) => match ab {
                AnythingBut::Values(vals) => {
                    matches!(v, Scalar::String(_) | Scalar::Number(_))
                        && !vals.iter().any(|x| num_eq(x, v))
                }
                AnythingBut::Prefix(p) => as_str(v).is_some_and(|s| !s.starts_with(p.as_str())),
                AnythingBut::Suffix(p) => as_str(v).is_some_and(|s| !s.ends_with(p.as_str())),
                AnythingBut::EqualsIgnoreCase(vals) => as_str(v).is_some_and(|s| {
                    let l = s.to_lowercase();
                    !vals.contains(&l)
                }),
                AnythingBut::Wildcard(ws) => {
                    as_str(v).is_some_and(|s| !ws.iter().any(|w| w.matches(s)))
                }
            },
        }
    }
}

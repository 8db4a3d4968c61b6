//! JSON ⇄ jq values without losing number precision, and without recursion on the way out: a
//! program's output can nest as deep as it likes without overflowing the stack, and is refused
//! past [`MAX_DEPTH`] levels (where no JSON parser downstream would read it back either).

use jaq_json::{Num, Rc, Val};
use serde_json::{Map, Number, Value as Json};

/// The deepest output accepted: serde_json's own parse limit, so every value Weir writes can be
/// read back by Weir.
pub const MAX_DEPTH: usize = 128;

fn number_to_val(n: &Number) -> Val {
    if let Some(i) = n.as_i64().and_then(|i| isize::try_from(i).ok()) {
        return Val::Num(Num::Int(i));
    }
    let text = n.to_string();
    let integral = !text.contains(['.', 'e', 'E']);
    Val::Num(if integral {
        Num::from_str_radix(&text, 10).unwrap_or_else(|| Num::Dec(Rc::new(text)))
    } else {
        // The decimal text is kept as written; jq computes with it as a double when asked to.
        Num::Dec(Rc::new(text))
    })
}

/// A record's JSON as a jq value (the input is at most [`MAX_DEPTH`] deep: it was parsed).
pub fn to_val(j: &Json) -> Val {
    match j {
        Json::Null => Val::Null,
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => number_to_val(n),
        Json::String(s) => Val::utf8_str(s.clone()),
        Json::Array(a) => Val::Arr(Rc::new(a.iter().map(to_val).collect())),
        Json::Object(o) => Val::obj(
            o.iter()
                .map(|(k, v)| (Val::utf8_str(k.clone()), to_val(v)))
                .collect(),
        ),
    }
}

fn text_number(text: &str) -> Option<Json> {
    serde_json::from_str::<Number>(text).ok().map(Json::Number)
}

fn num_to_json(n: &Num) -> Json {
    match n {
        Num::Int(i) => Json::from(*i as i64),
        Num::BigInt(b) => text_number(&b.to_string()).unwrap_or(Json::Null),
        // jq writes NaN as null and infinities as the largest doubles; null for both here.
        Num::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Num::Dec(d) => text_number(d).unwrap_or(Json::Null),
    }
}

fn text(v: &Val) -> Result<String, String> {
    match v {
        Val::TStr(b) | Val::BStr(b) => String::from_utf8(b.to_vec())
            .map_err(|_| "jq output holds a string that is not UTF-8".to_owned()),
        other => Ok(other.to_string()),
    }
}

/// Where a value under construction goes.
enum Slot {
    Root,
    Item,
    Field(String),
}

/// A jq value as JSON, built without recursion; refused past [`MAX_DEPTH`] levels.
pub(crate) fn to_json(v: &Val) -> Result<Json, String> {
    // Each open container: (its JSON so far, the slot it fills in its parent, children left).
    type Open<'v> = (
        Json,
        Slot,
        Box<dyn Iterator<Item = (Option<&'v Val>, &'v Val)> + 'v>,
    );
    let mut stack: Vec<Open<'_>> = Vec::new();
    let mut pending: Option<(Slot, &Val)> = Some((Slot::Root, v));
    loop {
        if let Some((slot, v)) = pending.take() {
            let leaf = match v {
                Val::Null => Json::Null,
                Val::Bool(b) => Json::Bool(*b),
                Val::Num(n) => num_to_json(n),
                Val::TStr(_) | Val::BStr(_) => Json::String(text(v)?),
                Val::Arr(a) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(format!("jq output nests deeper than {MAX_DEPTH} levels"));
                    }
                    stack.push((
                        Json::Array(Vec::with_capacity(a.len())),
                        slot,
                        Box::new(a.iter().map(|x| (None, x))),
                    ));
                    continue;
                }
                Val::Obj(o) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(format!("jq output nests deeper than {MAX_DEPTH} levels"));
                    }
                    stack.push((
                        Json::Object(Map::new()),
                        slot,
                        Box::new(o.iter().map(|(k, v)| (Some(k), v))),
                    ));
                    continue;
                }
            };
            match place(&mut stack, slot, leaf) {
                Some(done) => return Ok(done),
                None => continue,
            }
        }
        let Some((_, _, children)) = stack.last_mut() else {
            unreachable!("the root is returned when placed");
        };
        match children.next() {
            Some((key, child)) => {
                let slot = match key {
                    Some(k) => Slot::Field(text(k)?),
                    None => Slot::Item,
                };
                pending = Some((slot, child));
            }
            None => {
                let (done, slot, _) = stack.pop().expect("checked above");
                if let Some(root) = place(&mut stack, slot, done) {
                    return Ok(root);
                }
            }
        }
    }
}

/// Puts a finished value into its parent; returns it when it is the root.
fn place(stack: &mut [(Json, Slot, impl Sized)], slot: Slot, value: Json) -> Option<Json> {
    match (slot, stack.last_mut()) {
        (Slot::Root, _) => Some(value),
        (Slot::Item, Some((Json::Array(a), _, _))) => {
            a.push(value);
            None
        }
        (Slot::Field(k), Some((Json::Object(o), _, _))) => {
            o.insert(k, value);
            None
        }
        _ => unreachable!("children fill the container they belong to"),
    }
}

/// True when `v` nests deeper than [`MAX_DEPTH`] (checked without recursion).
pub fn too_deep(v: &Val) -> bool {
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Val>> = match v {
            Val::Arr(a) => Box::new(a.iter()),
            Val::Obj(o) => Box::new(o.values()),
            _ => continue,
        };
        if depth >= MAX_DEPTH {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// Drops a value without recursion (a deeply nested one would overflow the stack in drop).
pub fn drop_deep(v: Val) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Val::Arr(a) => {
                if let Ok(items) = Rc::try_unwrap(a) {
                    stack.extend(items);
                }
            }
            Val::Obj(o) => {
                if let Ok(map) = Rc::try_unwrap(o) {
                    for (k, v) in map {
                        stack.push(k);
                        stack.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

//! Avro values ⇄ the JSON that filters, templates and jq see.
//!
//! Reading (`to_json`): records → objects, unions → the branch's value (or `{"type": value}`
//! tagged), enums → strings, bytes/fixed → base64, decimal → a string honouring the scale, date,
//! time and timestamp logical types → integers or RFC 3339 text, uuid → string, duration →
//! `{months, days, millis}`, maps and arrays as they are. Floats that JSON cannot hold (NaN, ±∞)
//! become the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
//!
//! Writing (`from_json`) accepts everything reading produces (both time styles, tagged or plain
//! unions), fills absent fields from schema defaults, and names the field that does not fit.

use std::collections::HashMap;
use weir_core::time::{
    format_date, format_time, format_timestamp, parse_date, parse_time, parse_timestamp,
};

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, Names, UnionSchema};
use apache_avro::types::Value;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Number, Value as Json};
use weir_core::config::format::{TimeStyle, UnionStyle};

/// Options for reading Avro into JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadStyle {
    /// Unions plain or tagged.
    pub unions: UnionStyle,
    /// Logical times as integers or RFC 3339.
    pub times: TimeStyle,
}

/// A parsed schema with its named types, ready for conversions.
#[derive(Debug)]
pub struct Compiled {
    /// The schema.
    pub schema: Schema,
    names: Names,
    /// `big-decimal` somewhere: decode through apache-avro's values (see `binary`).
    has_big_decimal: bool,
}

/// A value does not fit its Avro schema, or a schema cannot be used; the message names the field
/// path (`$.card.amount`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConversionError(pub String);

impl Compiled {
    /// Resolves the named types of `schema` once.
    pub fn new(schema: Schema) -> Result<Self, ConversionError> {
        Self::compile(schema).map_err(ConversionError)
    }

    pub(crate) fn compile(schema: Schema) -> Result<Self, String> {
        let names = apache_avro::schema::ResolvedSchema::try_from(&schema)
            .map_err(|e| e.to_string())?
            .get_names()
            .iter()
            .map(|(k, v)| (k.clone(), (*v).clone()))
            .collect::<HashMap<_, _>>();
        let has_big_decimal = std::iter::once(&schema)
            .chain(names.values())
            .any(contains_big_decimal);
        Ok(Compiled {
            schema,
            names,
            has_big_decimal,
        })
    }

    /// The full name of the top-level named type (record, enum, fixed), if it is one.
    pub fn name(&self) -> Option<String> {
        match &self.schema {
            Schema::Record(r) => Some(r.name.fullname(None)),
            Schema::Enum(e) => Some(e.name.fullname(None)),
            Schema::Fixed(f) => Some(f.name.fullname(None)),
            _ => None,
        }
    }

    fn resolve<'a>(&'a self, s: &'a Schema) -> Result<&'a Schema, String> {
        match s {
            Schema::Ref { name } => self.names.get(name).ok_or_else(|| {
                format!(
                    "the schema refers to an unknown type {}",
                    name.fullname(None)
                )
            }),
            other => Ok(other),
        }
    }

    /// Avro → JSON.
    pub fn to_json(&self, v: &Value, style: ReadStyle) -> Result<Json, ConversionError> {
        self.value_to_json(v, &self.schema, style)
            .map_err(ConversionError)
    }

    /// JSON → Avro; the error names the field path (`$.card.amount`).
    pub fn from_json(&self, j: &Json) -> Result<Value, ConversionError> {
        self.json_to_value(j, &self.schema, "$")
            .map_err(ConversionError)
    }

    fn value_to_json(&self, v: &Value, s: &Schema, style: ReadStyle) -> Result<Json, String> {
        let s = self.resolve(s)?;
        let iso = style.times == TimeStyle::Rfc3339;
        Ok(match v {
            Value::Null => Json::Null,
            Value::Boolean(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Long(i) => Json::from(*i),
            Value::Float(f) => float(f64::from(*f)),
            Value::Double(f) => float(*f),
            Value::Bytes(b) | Value::Fixed(_, b) => Json::String(B64.encode(b)),
            Value::String(t) | Value::Enum(_, t) => Json::String(t.clone()),
            Value::Uuid(u) => Json::String(u.to_string()),
            Value::Union(i, inner) => {
                let Schema::Union(u) = s else {
                    return Err("a union value for a schema that is not a union".into());
                };
                let branch = u
                    .variants()
                    .get(*i as usize)
                    .ok_or_else(|| format!("union branch {i} is out of range"))?;
                let j = self.value_to_json(inner, branch, style)?;
                if style.unions == UnionStyle::Tagged && !matches!(**inner, Value::Null) {
                    let mut m = Map::new();
                    m.insert(type_name(branch), j);
                    Json::Object(m)
                } else {
                    j
                }
            }
            Value::Array(items) => {
                let Schema::Array(a) = s else {
                    return Err("an array value for a schema that is not an array".into());
                };
                Json::Array(
                    items
                        .iter()
                        .map(|x| self.value_to_json(x, &a.items, style))
                        .collect::<Result<_, _>>()?,
                )
            }
            Value::Map(m) => {
                let Schema::Map(ms) = s else {
                    return Err("a map value for a schema that is not a map".into());
                };
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), self.value_to_json(&m[k], &ms.types, style)?);
                }
                Json::Object(out)
            }
            Value::Record(fields) => {
                let Schema::Record(r) = s else {
                    return Err("a record value for a schema that is not a record".into());
                };
                let mut out = Map::new();
                for (name, fv) in fields {
                    let fs = r
                        .lookup
                        .get(name)
                        .map(|i| &r.fields[*i].schema)
                        .ok_or_else(|| format!("field {name} is not in the schema"))?;
                    out.insert(name.clone(), self.value_to_json(fv, fs, style)?);
                }
                Json::Object(out)
            }
            Value::Decimal(d) => {
                let Schema::Decimal(ds) = s else {
                    return Err("a decimal value for a schema that is not a decimal".into());
                };
                let bytes = Vec::<u8>::try_from(d).map_err(|e| e.to_string())?;
                Json::String(decimal_text(&bytes, ds.scale)?)
            }
            Value::BigDecimal(b) => Json::String(b.to_string()),
            Value::Date(d) if iso => Json::String(format_date(i64::from(*d))),
            Value::Date(d) => Json::from(*d),
            Value::TimeMillis(t) if iso => Json::String(format_time(i64::from(*t) * 1_000_000)),
            Value::TimeMillis(t) => Json::from(*t),
            Value::TimeMicros(t) if iso => Json::String(format_time(*t * 1_000)),
            Value::TimeMicros(t) => Json::from(*t),
            Value::TimestampMillis(t) | Value::LocalTimestampMillis(t) if iso => {
                Json::String(format_timestamp(i128::from(*t) * 1_000_000, is_utc(v)))
            }
            Value::TimestampMicros(t) | Value::LocalTimestampMicros(t) if iso => {
                Json::String(format_timestamp(i128::from(*t) * 1_000, is_utc(v)))
            }
            Value::TimestampNanos(t) | Value::LocalTimestampNanos(t) if iso => {
                Json::String(format_timestamp(i128::from(*t), is_utc(v)))
            }
            Value::TimestampMillis(t)
            | Value::TimestampMicros(t)
            | Value::TimestampNanos(t)
            | Value::LocalTimestampMillis(t)
            | Value::LocalTimestampMicros(t)
            | Value::LocalTimestampNanos(t) => Json::from(*t),
            Value::Duration(d) => serde_json::json!({
                "months": u32::from(d.months()),
                "days": u32::from(d.days()),
                "millis": u32::from(d.millis()),
            }),
        })
    }

    fn json_to_value(&self, j: &Json, s: &Schema, path: &str) -> Result<Value, String> {
        let s = self.resolve(s)?;
        let bad = |want: &str| {
            Err(format!(
                "field {path}: expected {want}, found {}",
                json_kind(j)
            ))
        };
        match s {
            Schema::Null => match j {
                Json::Null => Ok(Value::Null),
                _ => bad("null"),
            },
            Schema::Boolean => j
                .as_bool()
                .map(Value::Boolean)
                .map_or_else(|| bad("true or false"), Ok),
            Schema::Int => match j.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => Ok(Value::Int(i)),
                None => bad("a 32-bit integer"),
            },
            Schema::Long => j
                .as_i64()
                .map(Value::Long)
                .map_or_else(|| bad("a 64-bit integer"), Ok),
            Schema::Float => number_or_special(j)
                .map(|f| Value::Float(f as f32))
                .map_or_else(|| bad("a number"), Ok),
            Schema::Double => number_or_special(j)
                .map(Value::Double)
                .map_or_else(|| bad("a number"), Ok),
            Schema::Bytes => match j.as_str().map(|t| B64.decode(t)) {
                Some(Ok(b)) => Ok(Value::Bytes(b)),
                _ => bad("base64 text"),
            },
            Schema::String => j
                .as_str()
                .map(|t| Value::String(t.to_owned()))
                .map_or_else(|| bad("text"), Ok),
            Schema::Uuid(_) => match j.as_str().map(str::parse) {
                Some(Ok(u)) => Ok(Value::Uuid(u)),
                _ => bad("a UUID"),
            },
            Schema::Enum(e) => match j.as_str() {
                Some(t) => match e.symbols.iter().position(|x| x == t) {
                    Some(i) => Ok(Value::Enum(i as u32, t.to_owned())),
                    None => Err(format!(
                        "field {path}: {t:?} is not one of the symbols {}",
                        e.symbols.join(", ")
                    )),
                },
                None => bad("an enum symbol"),
            },
            Schema::Fixed(f) => match j.as_str().map(|t| B64.decode(t)) {
                Some(Ok(b)) if b.len() == f.size => Ok(Value::Fixed(f.size, b)),
                _ => bad(&format!("base64 of exactly {} bytes", f.size)),
            },
            Schema::Array(a) => match j {
                Json::Array(items) => Ok(Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| self.json_to_value(x, &a.items, &format!("{path}[{i}]")))
                        .collect::<Result<_, _>>()?,
                )),
                _ => bad("an array"),
            },
            Schema::Map(m) => match j {
                Json::Object(o) => Ok(Value::Map(
                    o.iter()
                        .map(|(k, x)| {
                            self.json_to_value(x, &m.types, &format!("{path}.{k}"))
                                .map(|v| (k.clone(), v))
                        })
                        .collect::<Result<_, _>>()?,
                )),
                _ => bad("an object"),
            },
            Schema::Record(r) => {
                let Json::Object(o) = j else {
                    return bad(&format!("an object for record {}", r.name.fullname(None)));
                };
                if let Some(extra) = o.keys().find(|k| !r.lookup.contains_key(*k)) {
                    return Err(format!(
                        "field {path}.{extra} is not in the schema {} (its fields: {})",
                        r.name.fullname(None),
                        r.fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    let fpath = format!("{path}.{}", f.name);
                    let v = match (o.get(&f.name), &f.default) {
                        (Some(x), _) => self.json_to_value(x, &f.schema, &fpath)?,
                        (None, Some(d)) => self.default_value(d, &f.schema, &fpath)?,
                        (None, None) => {
                            return Err(format!(
                                "field {fpath} is required by the schema {} and missing",
                                r.name.fullname(None)
                            ));
                        }
                    };
                    fields.push((f.name.clone(), v));
                }
                Ok(Value::Record(fields))
            }
            Schema::Union(u) => self.union_from_json(j, u, path),
            Schema::Decimal(d) => {
                let text = match j {
                    Json::String(t) => t.clone(),
                    Json::Number(n) => n.to_string(),
                    _ => return bad("a decimal (text or number)"),
                };
                let bytes = decimal_bytes(&text, d.scale, d.precision)
                    .map_err(|e| format!("field {path}: {e}"))?;
                let bytes = match &d.inner {
                    InnerDecimalSchema::Fixed(f) => {
                        sign_extend(&bytes, f.size).ok_or_else(|| {
                            format!("field {path}: {text} does not fit {} bytes", f.size)
                        })?
                    }
                    InnerDecimalSchema::Bytes => bytes,
                };
                Ok(Value::Decimal(bytes.into()))
            }
            Schema::BigDecimal => match j {
                Json::String(t) => t
                    .parse()
                    .map(Value::BigDecimal)
                    .map_err(|_| format!("field {path}: {t:?} is not a decimal number")),
                Json::Number(n) => n
                    .to_string()
                    .parse()
                    .map(Value::BigDecimal)
                    .map_err(|_| format!("field {path}: not a decimal number")),
                _ => bad("a decimal"),
            },
            Schema::Date => match j {
                Json::String(t) => parse_date(t)
                    .and_then(|d| i32::try_from(d).ok())
                    .map(Value::Date)
                    .ok_or_else(|| format!("field {path}: {t:?} is not a date (YYYY-MM-DD)")),
                _ => j
                    .as_i64()
                    .and_then(|d| i32::try_from(d).ok())
                    .map(Value::Date)
                    .map_or_else(|| bad("a date"), Ok),
            },
            Schema::TimeMillis => time_value(j, path, 1_000_000, |n| {
                i32::try_from(n).ok().map(Value::TimeMillis)
            }),
            Schema::TimeMicros => time_value(j, path, 1_000, |n| Some(Value::TimeMicros(n))),
            Schema::TimestampMillis => ts_value(j, path, 1_000_000, Value::TimestampMillis),
            Schema::TimestampMicros => ts_value(j, path, 1_000, Value::TimestampMicros),
            Schema::TimestampNanos => ts_value(j, path, 1, Value::TimestampNanos),
            Schema::LocalTimestampMillis => {
                ts_value(j, path, 1_000_000, Value::LocalTimestampMillis)
            }
            Schema::LocalTimestampMicros => ts_value(j, path, 1_000, Value::LocalTimestampMicros),
            Schema::LocalTimestampNanos => ts_value(j, path, 1, Value::LocalTimestampNanos),
            Schema::Duration(_) => {
                let get = |k: &str| {
                    j.get(k)
                        .and_then(Json::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                };
                match (get("months"), get("days"), get("millis")) {
                    (Some(m), Some(d), Some(ms)) => {
                        Ok(Value::Duration(apache_avro::Duration::new(
                            apache_avro::Months::new(m),
                            apache_avro::Days::new(d),
                            apache_avro::Millis::new(ms),
                        )))
                    }
                    _ => bad("an object {months, days, millis}"),
                }
            }
            Schema::Ref { .. } => unreachable!("resolved above"),
        }
    }

    /// A field default is written in Avro's JSON encoding: a union's default is for its first
    /// branch, bytes are ISO-8859-1 text.
    fn default_value(&self, d: &Json, s: &Schema, path: &str) -> Result<Value, String> {
        let s = self.resolve(s)?;
        match s {
            Schema::Union(u) => {
                let first = u.variants().first().ok_or("an empty union")?;
                Ok(Value::Union(
                    0,
                    Box::new(self.default_value(d, first, path)?),
                ))
            }
            Schema::Bytes => match d {
                Json::String(t) => Ok(Value::Bytes(t.chars().map(|c| c as u32 as u8).collect())),
                _ => Err(format!("field {path}: bad bytes default")),
            },
            _ => self.json_to_value(d, s, path),
        }
    }

    fn union_from_json(&self, j: &Json, u: &UnionSchema, path: &str) -> Result<Value, String> {
        let variants = u.variants();
        // Tagged: {"<branch type>": value}.
        if let Json::Object(o) = j
            && o.len() == 1
        {
            let (tag, inner) = o.iter().next().expect("one entry");
            if let Some(i) = variants.iter().position(|b| type_name(b) == *tag) {
                let v = self.json_to_value(inner, &variants[i], path)?;
                return Ok(Value::Union(i as u32, Box::new(v)));
            }
        }
        for (i, b) in variants.iter().enumerate() {
            if let Ok(v) = self.json_to_value(j, b, path) {
                return Ok(Value::Union(i as u32, Box::new(v)));
            }
        }
        Err(format!(
            "field {path}: {} fits no branch of the union [{}]",
            json_kind(j),
            variants
                .iter()
                .map(type_name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// True when `s` uses `big-decimal` outside named types (those are checked on their own).
fn contains_big_decimal(s: &Schema) -> bool {
    match s {
        Schema::BigDecimal => true,
        Schema::Array(a) => contains_big_decimal(&a.items),
        Schema::Map(m) => contains_big_decimal(&m.types),
        Schema::Union(u) => u.variants().iter().any(contains_big_decimal),
        Schema::Record(r) => r.fields.iter().any(|f| contains_big_decimal(&f.schema)),
        _ => false,
    }
}

fn is_utc(v: &Value) -> bool {
    matches!(
        v,
        Value::TimestampMillis(_) | Value::TimestampMicros(_) | Value::TimestampNanos(_)
    )
}

fn float(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn number_or_special(j: &Json) -> Option<f64> {
    match j {
        Json::Number(n) => n.as_f64(),
        Json::String(t) => match t.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Avro JSON encoding's name for a union branch.
fn type_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes | Schema::BigDecimal => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Uuid(_) => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) | Schema::Duration(f) => f.name.fullname(None),
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Bytes => "bytes".into(),
            InnerDecimalSchema::Fixed(f) => f.name.fullname(None),
        },
        Schema::Ref { name } => name.fullname(None),
    }
}

fn json_kind(j: &Json) -> String {
    match j {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => format!("the number {n}"),
        Json::String(t) if t.len() <= 40 => format!("the text {t:?}"),
        Json::String(_) => "text".into(),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
    }
}

/// Two's complement big-endian bytes → decimal text with `scale` digits after the point.
pub fn format_decimal(bytes: &[u8], scale: usize) -> Result<String, ConversionError> {
    decimal_text(bytes, scale).map_err(ConversionError)
}

pub(crate) fn decimal_text(bytes: &[u8], scale: usize) -> Result<String, String> {
    if bytes.len() > 16 {
        return Err("decimals wider than 128 bits are not supported".into());
    }
    let mut buf = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        [0xFFu8; 16]
    } else {
        [0u8; 16]
    };
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    let n = i128::from_be_bytes(buf);
    let digits = n.unsigned_abs().to_string();
    let sign = if n < 0 { "-" } else { "" };
    if scale == 0 {
        return Ok(format!("{sign}{digits}"));
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    Ok(format!("{sign}{int}.{frac}"))
}

/// Decimal text → minimal two's complement big-endian bytes of the unscaled value.
pub fn parse_decimal(
    text: &str,
    scale: usize,
    precision: usize,
) -> Result<Vec<u8>, ConversionError> {
    decimal_bytes(text, scale, precision).map_err(ConversionError)
}

pub(crate) fn decimal_bytes(text: &str, scale: usize, precision: usize) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("{text:?} is not a decimal number"));
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > scale {
        return Err(format!(
            "{text} has more than {scale} digits after the point (the schema's scale)"
        ));
    }
    let digits = format!("{int}{frac_trimmed:0<scale$}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > precision {
        return Err(format!(
            "{text} has more than {precision} digits (the schema's precision)"
        ));
    }
    let n: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| format!("{text} is too large"))?
    };
    let n = if neg { -n } else { n };
    let bytes = n.to_be_bytes();
    // Minimal: drop leading bytes that only repeat the sign.
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok(bytes[start..].to_vec())
}

fn sign_extend(bytes: &[u8], size: usize) -> Option<Vec<u8>> {
    if bytes.len() > size {
        return None;
    }
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xFF
    } else {
        0
    };
    let mut out = vec![fill; size - bytes.len()];
    out.extend_from_slice(bytes);
    Some(out)
}

fn time_value(
    j: &Json,
    path: &str,
    nanos_per_unit: i64,
    make: impl Fn(i64) -> Option<Value>,
) -> Result<Value, String> {
    let n = match j {
        Json::String(t) => parse_time(t).map(|ns| ns / nanos_per_unit),
        _ => j.as_i64(),
    };
    n.and_then(make).ok_or_else(|| {
        format!(
            "field {path}: expected a time of day (integer or HH:MM:SS[.fraction]), found {}",
            json_kind(j)
        )
    })
}

fn ts_value(
    j: &Json,
    path: &str,
    nanos_per_unit: i128,
    make: impl Fn(i64) -> Value,
) -> Result<Value, String> {
    let n = match j {
        Json::String(t) => {
            parse_timestamp(t).and_then(|ns| i64::try_from(ns.div_euclid(nanos_per_unit)).ok())
        }
        _ => j.as_i64(),
    };
    n.map(make).ok_or_else(|| {
        format!(
            "field {path}: expected a timestamp (integer or RFC 3339 text), found {}",
            json_kind(j)
        )
    })
}

mod binary;
#[cfg(test)]
mod tests;

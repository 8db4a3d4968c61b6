//! Avro binary → JSON in one pass, walking the writer's schema, without building apache-avro's
//! `Value` tree first (half the allocations of decode-then-convert). It produces exactly what
//! [`Compiled::to_json`] produces from `apache_avro::from_avro_datum` (the tests compare the two
//! on the same bytes); schemas with the `big-decimal` logical type take that slower path.

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
use base64::Engine as _;
use serde_json::{Map, Value as Json};
use weir_core::config::format::{TimeStyle, UnionStyle};
use weir_core::time::{format_date, format_time, format_timestamp};

use super::{B64, Compiled, ReadStyle, decimal_text, float, type_name};

/// A block of more items than this that take no bytes each (nulls, empty records) is refused:
/// a few bytes of input must not make gigabytes of JSON.
const MAX_EMPTY_ITEMS: usize = 1 << 16;

/// Nesting deeper than this (recursive schemas) is refused rather than overflowing the stack.
const MAX_DEPTH: usize = 256;

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let (&b, rest) = self
            .data
            .split_first()
            .ok_or("the data ends in the middle of a value")?;
        self.data = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.data.len() {
            return Err(format!(
                "a length of {n} bytes runs past the end of the data ({} left)",
                self.data.len()
            ));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    /// A zig-zag varint (int and long share the encoding).
    fn long(&mut self) -> Result<i64, String> {
        let mut n: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        Err("an integer is longer than 10 bytes".into())
    }

    fn int(&mut self) -> Result<i32, String> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| format!("{n} does not fit an Avro int"))
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("a negative length ({n})"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.len()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| format!("a string is not UTF-8: {e}"))
    }

    /// The item count of the next array or map block (0 = the end); a negative count is
    /// followed by the block's size in bytes.
    fn block(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        if n < 0 {
            self.long()?;
        }
        let n = n.unsigned_abs();
        let n = usize::try_from(n).map_err(|_| format!("a block of {n} items"))?;
        if n > self.data.len().max(MAX_EMPTY_ITEMS) {
            return Err(format!(
                "a block of {n} items in {} bytes of data",
                self.data.len()
            ));
        }
        Ok(n)
    }
}

impl Compiled {
    /// Decodes one Avro datum written with this schema straight to JSON, leaving what follows it
    /// in `data`.
    pub fn decode_to_json(
        &self,
        data: &mut &[u8],
        style: ReadStyle,
    ) -> Result<Json, super::ConversionError> {
        self.decode(data, style).map_err(super::ConversionError)
    }

    pub(crate) fn decode(&self, data: &mut &[u8], style: ReadStyle) -> Result<Json, String> {
        if self.has_big_decimal {
            #[allow(deprecated)] // GenericDatumReader is not in 0.22's stable API yet
            let value = apache_avro::from_avro_datum(&self.schema, data, None)
                .map_err(|e| e.to_string())?;
            return self.value_to_json(&value, &self.schema, style);
        }
        let mut r = Reader { data };
        let j = self.read(&mut r, &self.schema, style, 0)?;
        *data = r.data;
        Ok(j)
    }

    fn read(
        &self,
        r: &mut Reader<'_>,
        s: &Schema,
        style: ReadStyle,
        depth: usize,
    ) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        let s = self.resolve(s)?;
        let iso = style.times == TimeStyle::Rfc3339;
        Ok(match s {
            Schema::Null => Json::Null,
            Schema::Boolean => match r.byte()? {
                0 => Json::Bool(false),
                1 => Json::Bool(true),
                b => return Err(format!("a boolean byte of {b}")),
            },
            Schema::Int => Json::from(r.int()?),
            Schema::Long => Json::from(r.long()?),
            Schema::Float => {
                let b = r.take(4)?;
                float(f64::from(f32::from_le_bytes(
                    b.try_into().expect("4 bytes"),
                )))
            }
            Schema::Double => {
                let b = r.take(8)?;
                float(f64::from_le_bytes(b.try_into().expect("8 bytes")))
            }
            Schema::Bytes => Json::String(B64.encode(r.bytes()?)),
            Schema::String => Json::String(r.string()?),
            Schema::Fixed(f) => Json::String(B64.encode(r.take(f.size)?)),
            Schema::Enum(e) => {
                let i = r.int()?;
                let sym = usize::try_from(i)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| format!("enum index {i} is out of range"))?;
                Json::String(sym.clone())
            }
            Schema::Uuid(u) => {
                let text = match u {
                    UuidSchema::String => r.string()?,
                    UuidSchema::Bytes => uuid_text(r.bytes()?)?,
                    UuidSchema::Fixed(f) => uuid_text(r.take(f.size)?)?,
                };
                // Normalised like the uuid crate prints it.
                let parsed: apache_avro::Uuid = text
                    .parse()
                    .map_err(|e| format!("{text:?} is not a UUID: {e}"))?;
                Json::String(parsed.to_string())
            }
            Schema::Array(a) => {
                let mut items = Vec::new();
                loop {
                    let n = r.block()?;
                    if n == 0 {
                        break;
                    }
                    items.reserve(n.min(r.data.len() + 1));
                    for _ in 0..n {
                        items.push(self.read(r, &a.items, style, depth + 1)?);
                    }
                }
                Json::Array(items)
            }
            Schema::Map(m) => {
                let mut out = Map::new();
                loop {
                    let n = r.block()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        let k = r.string()?;
                        let v = self.read(r, &m.types, style, depth + 1)?;
                        out.insert(k, v);
                    }
                }
                Json::Object(out)
            }
            Schema::Record(rec) => {
                let mut out = Map::new();
                for f in &rec.fields {
                    let v = self.read(r, &f.schema, style, depth + 1)?;
                    out.insert(f.name.clone(), v);
                }
                Json::Object(out)
            }
            Schema::Union(u) => {
                let i = r.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union branch {i} is out of range"))?;
                let j = self.read(r, branch, style, depth + 1)?;
                let is_null = matches!(self.resolve(branch)?, Schema::Null);
                if style.unions == UnionStyle::Tagged && !is_null {
                    let mut m = Map::new();
                    m.insert(type_name(branch), j);
                    Json::Object(m)
                } else {
                    j
                }
            }
            Schema::Decimal(d) => {
                let bytes = match &d.inner {
                    InnerDecimalSchema::Bytes => r.bytes()?,
                    InnerDecimalSchema::Fixed(f) => r.take(f.size)?,
                };
                Json::String(decimal_text(bytes, d.scale)?)
            }
            Schema::BigDecimal => unreachable!("schemas with big-decimal take the generic path"),
            Schema::Date => {
                let d = r.int()?;
                if iso {
                    Json::String(format_date(i64::from(d)))
                } else {
                    Json::from(d)
                }
            }
            Schema::TimeMillis => {
                let t = r.int()?;
                if iso {
                    Json::String(format_time(i64::from(t) * 1_000_000))
                } else {
                    Json::from(t)
                }
            }
            Schema::TimeMicros => {
                let t = r.long()?;
                if iso {
                    Json::String(format_time(t * 1_000))
                } else {
                    Json::from(t)
                }
            }
            Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                let t = r.long()?;
                if !iso {
                    return Ok(Json::from(t));
                }
                let (nanos_per_unit, utc) = match s {
                    Schema::TimestampMillis => (1_000_000, true),
                    Schema::TimestampMicros => (1_000, true),
                    Schema::TimestampNanos => (1, true),
                    Schema::LocalTimestampMillis => (1_000_000, false),
                    Schema::LocalTimestampMicros => (1_000, false),
                    _ => (1, false),
                };
                Json::String(format_timestamp(i128::from(t) * nanos_per_unit, utc))
            }
            Schema::Duration(f) => {
                let b = r.take(f.size)?;
                if b.len() != 12 {
                    return Err(format!("a duration of {} bytes, not 12", b.len()));
                }
                let part = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
                serde_json::json!({"months": part(0), "days": part(4), "millis": part(8)})
            }
            Schema::Ref { .. } => unreachable!("resolved above"),
        })
    }
}

fn uuid_text(b: &[u8]) -> Result<String, String> {
    let b: [u8; 16] = b
        .try_into()
        .map_err(|_| format!("a UUID of {} bytes, not 16", b.len()))?;
    Ok(apache_avro::Uuid::from_bytes(b).to_string())
}

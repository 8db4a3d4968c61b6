//! One validating pass over a JSON document that records where the wanted object members are.
//!
//! It accepts exactly what `serde_json::from_slice::<serde_json::Value>` accepts with this
//! workspace's features (`arbitrary_precision`, `preserve_order`): RFC 8259 syntax, UTF-8 strings
//! without raw control characters, paired surrogates in `\u` escapes, at most 127 nested arrays
//! and objects, and nothing but whitespace after the value. Duplicate keys are accepted and the
//! last one wins, as in serde_json's `Value`. The two object keys through which serde_json's
//! `arbitrary_precision`/`raw_value` read a number or raw value out of an object are reported as
//! [`ScanError::Unsupported`], so that such a document takes serde_json's own path.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

/// serde_json refuses the 128th nested array or object (its `remaining_depth` starts at 128).
pub const MAX_DEPTH: u32 = 127;

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    /// Not valid JSON (serde_json gives the exact error message).
    Invalid,
    /// Valid or not, a document whose meaning only serde_json knows (its private number and
    /// raw-value keys).
    Unsupported,
}

/// The object members a scan records: a tree of keys below the document's root (node 0).
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    nodes: Vec<WantedNode>,
}

#[derive(Debug, Clone, Default)]
struct WantedNode {
    children: Vec<(Box<[u8]>, u32)>,
}

impl Wanted {
    /// The root node: the document itself.
    pub const ROOT: u32 = 0;

    /// A tree with only the root.
    pub fn new() -> Self {
        Wanted {
            nodes: vec![WantedNode::default()],
        }
    }

    /// The node for member `key` of the object at `parent`, added if new.
    pub fn child(&mut self, parent: u32, key: &str) -> u32 {
        if let Some((_, id)) = self.nodes[parent as usize]
            .children
            .iter()
            .find(|(k, _)| &**k == key.as_bytes())
        {
            return *id;
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(WantedNode::default());
        self.nodes[parent as usize]
            .children
            .push((key.as_bytes().into(), id));
        id
    }

    /// The nodes along a path of keys from the root, added if new; the last is the path's.
    pub fn path<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) -> u32 {
        keys.into_iter()
            .fold(Self::ROOT, |parent, k| self.child(parent, k))
    }

    /// The node of a path of keys, if it was added.
    pub fn find<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Option<u32> {
        let mut node = Self::ROOT;
        for k in keys {
            node = self.nodes[node as usize]
                .children
                .iter()
                .find(|(c, _)| &**c == k.as_bytes())?
                .1;
        }
        Some(node)
    }

    /// How many nodes, the root included: the length of a scan's slot table.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: the root is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn clear_below(&self, node: u32, slots: &mut [Slot]) {
        for (_, c) in &self.nodes[node as usize].children {
            if slots[*c as usize].is_found() {
                slots[*c as usize] = Slot::NONE;
                self.clear_below(*c, slots);
            }
        }
    }
}

/// Where a wanted value was found (byte offsets into the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The member's key (its opening quote); for the root, the value's start.
    pub key: u32,
    /// The value's first byte.
    pub start: u32,
    /// One past the value's last byte.
    pub end: u32,
    /// One past the previous member's value, or past the object's `{` for the first member.
    pub prev: u32,
    /// The next member's key (its opening quote), or the object's `}` for the last member.
    pub next: u32,
}

impl Slot {
    /// Not found.
    pub const NONE: Slot = Slot {
        key: u32::MAX,
        start: u32::MAX,
        end: u32::MAX,
        prev: u32::MAX,
        next: u32::MAX,
    };

    /// True when the value was found.
    pub fn is_found(&self) -> bool {
        self.start != u32::MAX
    }

    /// The value's bytes.
    pub fn value<'d>(&self, doc: &'d [u8]) -> &'d [u8] {
        &doc[self.start as usize..self.end as usize]
    }
}

/// What a successful scan learnt besides the slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanInfo {
    /// A wanted key appeared more than once in one object (the slot holds the last).
    pub duplicate: bool,
}

/// Scans `doc`, filling `slots` (one per node of `wanted`, reset here) with the wanted values.
pub fn scan(doc: &[u8], wanted: &Wanted, slots: &mut [Slot]) -> Result<ScanInfo, ScanError> {
    scan_with::<true>(doc, wanted, slots)
}

/// [`scan`] for a document already known to be valid (a scan passed it, or it is a splice of
/// one): it finds the members without checking the grammar, UTF-8 or depth again. On bytes
/// that are not valid JSON its slots mean nothing (it never reads out of bounds or panics).
pub fn scan_valid(doc: &[u8], wanted: &Wanted, slots: &mut [Slot]) -> Result<ScanInfo, ScanError> {
    scan_with::<false>(doc, wanted, slots)
}

/// The members of a document's root object, as a validating scan found them: later stages find
/// a top-level member without scanning the document again, and scan only inside the members
/// they need. Cloning shares the members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootIndex {
    /// One past the root's `{`.
    open: u32,
    /// The root's `}`.
    close: u32,
    members: Arc<[Member]>,
}

thread_local! {
    /// The members a scan collects before they are copied into one shared allocation: reused,
    /// so an index costs one allocation per document.
    static MEMBERS: RefCell<Vec<Member>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    /// The key's opening quote.
    key: u32,
    /// One past the key's closing quote.
    key_end: u32,
    escaped: bool,
    start: u32,
    end: u32,
}

/// [`scan`] that also returns the index of the root object's members (`None` when the root is
/// not an object).
pub fn scan_indexed(
    doc: &[u8],
    wanted: &Wanted,
    slots: &mut [Slot],
) -> Result<(ScanInfo, Option<RootIndex>), ScanError> {
    MEMBERS.with_borrow_mut(|members| {
        members.clear();
        let info = scan_inner::<true>(doc, wanted, slots, Some(members))?;
        let root = slots[0];
        let index = (doc.get(root.start as usize) == Some(&b'{')).then(|| RootIndex {
            open: root.start + 1,
            close: root.end - 1,
            members: Arc::from(&members[..]),
        });
        if members.capacity() > 1024 {
            // Not kept for every later document after one with a huge root object.
            *members = Vec::new();
        }
        Ok((info, index))
    })
}

/// [`scan_valid`] through an index of the same document: top-level members from the index,
/// and a scan only inside those with wanted members below them.
pub fn scan_with_index(
    doc: &[u8],
    index: &RootIndex,
    wanted: &Wanted,
    slots: &mut [Slot],
) -> Result<ScanInfo, ScanError> {
    assert!(slots.len() >= wanted.len(), "one slot per wanted node");
    slots[..wanted.len()].fill(Slot::NONE);
    slots[0] = Slot {
        key: index.open - 1,
        start: index.open - 1,
        end: index.close + 1,
        prev: index.open - 1,
        next: index.close + 1,
    };
    let mut info = ScanInfo::default();
    let m = &index.members;
    for (key, child) in &wanted.nodes[0].children {
        let mut found = None;
        for (i, member) in m.iter().enumerate() {
            let k = &doc[member.key as usize + 1..member.key_end as usize - 1];
            let hit = if member.escaped {
                serde_json::from_slice::<String>(&doc[member.key as usize..member.key_end as usize])
                    .is_ok_and(|d| d.as_bytes() == &**key)
            } else {
                k == &**key
            };
            if hit {
                info.duplicate |= found.is_some();
                found = Some(i);
            }
        }
        let Some(i) = found else { continue };
        let member = m[i];
        slots[*child as usize] = Slot {
            key: member.key,
            start: member.start,
            end: member.end,
            prev: if i == 0 { index.open } else { m[i - 1].end },
            next: m.get(i + 1).map_or(index.close, |n| n.key),
        };
        if !wanted.nodes[*child as usize].children.is_empty()
            && doc.get(member.start as usize) == Some(&b'{')
        {
            let mut s = Scanner::<false> {
                b: doc,
                i: member.start as usize,
                depth: 1,
                wanted,
                slots,
                info,
                members: None,
            };
            s.value(Some(*child))?;
            info = s.info;
        }
    }
    Ok(info)
}

fn scan_with<const CHECK: bool>(
    doc: &[u8],
    wanted: &Wanted,
    slots: &mut [Slot],
) -> Result<ScanInfo, ScanError> {
    scan_inner::<CHECK>(doc, wanted, slots, None)
}

fn scan_inner<const CHECK: bool>(
    doc: &[u8],
    wanted: &Wanted,
    slots: &mut [Slot],
    members: Option<&mut Vec<Member>>,
) -> Result<ScanInfo, ScanError> {
    assert!(slots.len() >= wanted.len(), "one slot per wanted node");
    assert!(doc.len() < u32::MAX as usize, "documents under 4 GiB");
    slots[..wanted.len()].fill(Slot::NONE);
    let mut s = Scanner::<CHECK> {
        b: doc,
        i: 0,
        depth: 0,
        wanted,
        slots,
        info: ScanInfo::default(),
        members,
    };
    s.ws();
    let start = s.i;
    s.value(Some(Wanted::ROOT))?;
    s.slots[0] = Slot {
        key: start as u32,
        start: start as u32,
        end: s.i as u32,
        prev: start as u32,
        next: s.i as u32,
    };
    s.ws();
    if s.i != doc.len() {
        return Err(ScanError::Invalid);
    }
    Ok(s.info)
}

/// True when `doc` is one JSON document serde_json reads into a `Value` (see the module docs);
/// `Err(Unsupported)` when only serde_json can tell.
pub fn validate(doc: &[u8]) -> Result<(), ScanError> {
    static NOTHING: std::sync::LazyLock<Wanted> = std::sync::LazyLock::new(Wanted::new);
    let mut slot = [Slot::NONE];
    scan(doc, &NOTHING, &mut slot).map(|_| ())
}

struct Scanner<'a, 's, const CHECK: bool> {
    b: &'a [u8],
    i: usize,
    depth: u32,
    wanted: &'a Wanted,
    slots: &'s mut [Slot],
    info: ScanInfo,
    /// Collects the root object's members when set.
    members: Option<&'s mut Vec<Member>>,
}

/// The first byte at or after `i` that ends a plain run inside a string: `"`, `\`, a control
/// character or a non-ASCII byte (or `b.len()`). Eight bytes at a time: a byte of `x` is zero
/// in `(x - 0x01…) & !x & 0x80…` exactly where the lowest such byte is, and borrows only make
/// bytes above a true one look like matches, so the lowest flag is always a true match.
#[inline(always)]
fn string_stop(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let q = x ^ (LO * b'"' as u64);
        let s = x ^ (LO * b'\\' as u64);
        let m = ((q.wrapping_sub(LO) & !q)
            | (s.wrapping_sub(LO) & !s)
            | (x.wrapping_sub(LO * 0x20) & !x)
            | x)
            & HI;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c < 0x20 || c == b'"' || c == b'\\' || c >= 0x80 {
            break;
        }
        i += 1;
    }
    i
}

const NUMBER_KEY: &[u8] = b"$serde_json::private::Number";
const RAW_KEY: &[u8] = b"$serde_json::private::RawValue";

/// The first `"` or `\` at or after `i` (or `b.len()`), for documents known to be valid.
#[inline(always)]
fn quote_stop(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let q = x ^ (LO * b'"' as u64);
        let s = x ^ (LO * b'\\' as u64);
        let m = ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s)) & HI;
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' {
            break;
        }
        i += 1;
    }
    i
}

impl<const CHECK: bool> Scanner<'_, '_, CHECK> {
    /// Skips whitespace; compact JSON has none between tokens, so the first byte decides most
    /// calls with one comparison.
    #[inline(always)]
    fn ws(&mut self) {
        match self.b.get(self.i) {
            Some(&c) if c > b' ' => {}
            _ => self.ws_run(),
        }
    }

    #[inline(never)]
    fn ws_run(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\t' || c == b'\r' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn value(&mut self, node: Option<u32>) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => self.object(node),
            Some(b'[') => self.array(),
            Some(b't') => self.ident(b"true"),
            Some(b'f') => self.ident(b"false"),
            Some(b'n') => self.ident(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(ScanError::Invalid),
        }
    }

    #[inline]
    fn ident(&mut self, word: &[u8]) -> Result<(), ScanError> {
        if !CHECK {
            self.i = (self.i + word.len()).min(self.b.len());
            return Ok(());
        }
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(ScanError::Invalid)
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    #[inline]
    fn number(&mut self) -> Result<(), ScanError> {
        if !CHECK {
            while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
                self.i += 1;
            }
            return Ok(());
        }
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(ScanError::Invalid);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(ScanError::Invalid),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(ScanError::Invalid);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(ScanError::Invalid);
            }
        }
        Ok(())
    }

    /// A string starting at its opening quote; returns its content's range and whether it has
    /// escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<(usize, usize, bool), ScanError> {
        let b = self.b;
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        if !CHECK {
            loop {
                i = quote_stop(b, i);
                match b.get(i) {
                    Some(b'"') => break,
                    Some(_) => {
                        escaped = true;
                        i += 2;
                    }
                    None => return Err(ScanError::Invalid),
                }
            }
            self.i = i + 1;
            return Ok((start, i.min(b.len()), escaped));
        }
        let mut non_ascii = false;
        loop {
            i = string_stop(b, i);
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.i = i;
                    self.escape()?;
                    i = self.i;
                }
                Some(c) if *c >= 0x80 => {
                    non_ascii = true;
                    i += 1;
                }
                // A raw control character, or the end of the input.
                _ => return Err(ScanError::Invalid),
            }
        }
        self.i = i + 1;
        if non_ascii && std::str::from_utf8(&b[start..i]).is_err() {
            return Err(ScanError::Invalid);
        }
        Ok((start, i, escaped))
    }

    fn hex4(&mut self) -> Result<u16, ScanError> {
        let h = self.b.get(self.i..self.i + 4).ok_or(ScanError::Invalid)?;
        let mut n = 0u16;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(ScanError::Invalid),
            };
            n = n << 4 | u16::from(d);
        }
        self.i += 4;
        Ok(n)
    }

    /// An escape at the backslash, as serde_json validates it for a UTF-8 string.
    fn escape(&mut self) -> Result<(), ScanError> {
        self.i += 1;
        let c = self.peek().ok_or(ScanError::Invalid)?;
        self.i += 1;
        match c {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' => {
                let n = self.hex4()?;
                match n {
                    0xDC00..=0xDFFF => Err(ScanError::Invalid),
                    0xD800..=0xDBFF => {
                        if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                            return Err(ScanError::Invalid);
                        }
                        self.i += 2;
                        match self.hex4()? {
                            0xDC00..=0xDFFF => Ok(()),
                            _ => Err(ScanError::Invalid),
                        }
                    }
                    _ => Ok(()),
                }
            }
            _ => Err(ScanError::Invalid),
        }
    }

    #[inline]
    fn enter(&mut self) -> Result<(), ScanError> {
        self.depth += 1;
        if CHECK && self.depth > MAX_DEPTH {
            return Err(ScanError::Invalid);
        }
        self.i += 1;
        Ok(())
    }

    /// A member's or element's value: strings and numbers here, without the call through
    /// [`Scanner::value`] (most values are scalars), the rest through it.
    #[inline(always)]
    fn member_value(&mut self, node: Option<u32>) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.value(node),
        }
    }

    fn array(&mut self) -> Result<(), ScanError> {
        self.enter()?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.member_value(None)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(ScanError::Invalid),
            }
        }
    }

    fn object(&mut self, node: Option<u32>) -> Result<(), ScanError> {
        self.enter()?;
        let children = match node {
            Some(n) => &self.wanted.nodes[n as usize].children[..],
            None => &[],
        };
        let mut prev = self.i;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut first = true;
        loop {
            if self.peek() != Some(b'"') {
                return Err(ScanError::Invalid);
            }
            let key_at = self.i;
            let (ks, ke, escaped) = self.string()?;
            if first {
                first = false;
                let k = &self.b[ks..ke];
                if escaped || k == NUMBER_KEY || k == RAW_KEY {
                    // serde_json classifies the first key after unescaping it.
                    if escaped {
                        let key: String = serde_json::from_slice(&self.b[key_at..self.i])
                            .map_err(|_| ScanError::Invalid)?;
                        if key.as_bytes() == NUMBER_KEY || key.as_bytes() == RAW_KEY {
                            return Err(ScanError::Unsupported);
                        }
                    } else {
                        return Err(ScanError::Unsupported);
                    }
                }
            }
            let hit = if children.is_empty() {
                None
            } else {
                let k = &self.b[ks..ke];
                if escaped {
                    let key: String = serde_json::from_slice(&self.b[key_at..self.i])
                        .map_err(|_| ScanError::Invalid)?;
                    children
                        .iter()
                        .find(|(c, _)| **c == *key.as_bytes())
                        .map(|(_, id)| *id)
                } else {
                    children.iter().find(|(c, _)| **c == *k).map(|(_, id)| *id)
                }
            };
            if self.peek() == Some(b':') {
                self.i += 1;
            } else {
                self.ws();
                if self.peek() != Some(b':') {
                    return Err(ScanError::Invalid);
                }
                self.i += 1;
            }
            self.ws();
            let start = self.i;
            if let Some(c) = hit
                && self.slots[c as usize].is_found()
            {
                self.info.duplicate = true;
                self.wanted.clear_below(c, self.slots);
            }
            self.member_value(hit)?;
            let end = self.i;
            if self.depth == 1
                && let Some(m) = self.members.as_deref_mut()
            {
                m.push(Member {
                    key: key_at as u32,
                    key_end: ke as u32 + 1,
                    escaped,
                    start: start as u32,
                    end: end as u32,
                });
            }
            self.ws();
            let more = match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                    true
                }
                Some(b'}') => false,
                _ => return Err(ScanError::Invalid),
            };
            if let Some(c) = hit {
                self.slots[c as usize] = Slot {
                    key: key_at as u32,
                    start: start as u32,
                    end: end as u32,
                    prev: prev as u32,
                    next: self.i as u32,
                };
            }
            prev = end;
            if !more {
                self.i += 1;
                self.depth -= 1;
                return Ok(());
            }
        }
    }
}

/// A scalar as a pattern or a mask sees it, borrowed from the document where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number's text as written.
    Number(&'a str),
    /// A string's content, unescaped.
    String(Cow<'a, str>),
}

/// The kind of a scanned (valid) value from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`, a boolean, a number or a string.
    Scalar,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// The kind of the valid JSON value `v`.
pub fn kind(v: &[u8]) -> Kind {
    match v.first() {
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        _ => Kind::Scalar,
    }
}

/// Reads the valid scalar `v` (as a scan found it); `None` for arrays and objects.
pub fn scalar(v: &[u8]) -> Option<Scalar<'_>> {
    Some(match v.first()? {
        b'n' => Scalar::Null,
        b't' => Scalar::Bool(true),
        b'f' => Scalar::Bool(false),
        b'"' => {
            let inner = &v[1..v.len() - 1];
            if inner.contains(&b'\\') {
                Scalar::String(Cow::Owned(
                    serde_json::from_slice(v).expect("a scanned string decodes"),
                ))
            } else {
                Scalar::String(Cow::Borrowed(
                    std::str::from_utf8(inner).expect("a scanned string is UTF-8"),
                ))
            }
        }
        b'[' | b'{' => return None,
        _ => Scalar::Number(std::str::from_utf8(v).expect("a number is ASCII")),
    })
}

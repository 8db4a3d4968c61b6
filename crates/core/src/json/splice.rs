//! Edits of a document's bytes: replace, remove or insert ranges, applied in one copy.

/// Pending edits of one document; ranges must not overlap (an insertion may sit at the start or
/// end of another edit's range).
#[derive(Debug)]
pub struct Splice<'d> {
    doc: &'d [u8],
    edits: Vec<Edit>,
    text: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Edit {
    start: u32,
    end: u32,
    text_start: u32,
    text_end: u32,
}

impl<'d> Splice<'d> {
    /// No edits yet.
    pub fn new(doc: &'d [u8]) -> Self {
        Splice {
            doc,
            edits: Vec::new(),
            text: Vec::new(),
        }
    }

    /// The document being edited.
    pub fn doc(&self) -> &'d [u8] {
        self.doc
    }

    /// True when nothing was edited.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Replaces `start..end` with what `write` appends to the buffer it is given.
    pub fn replace_with(&mut self, start: u32, end: u32, write: impl FnOnce(&mut Vec<u8>)) {
        let text_start = self.text.len() as u32;
        write(&mut self.text);
        self.edits.push(Edit {
            start,
            end,
            text_start,
            text_end: self.text.len() as u32,
        });
    }

    /// Replaces `start..end` with `bytes`.
    pub fn replace(&mut self, start: u32, end: u32, bytes: &[u8]) {
        self.replace_with(start, end, |b| b.extend_from_slice(bytes));
    }

    /// Removes `start..end`.
    pub fn remove(&mut self, start: u32, end: u32) {
        self.replace(start, end, b"");
    }

    /// True when `start..end` overlaps an edit already made (touching ends do not overlap).
    pub fn overlaps(&self, start: u32, end: u32) -> bool {
        self.edits
            .iter()
            .any(|e| start < e.end && e.start < end || start == e.start && end == e.end)
    }

    /// The edited document, or `None` when nothing was edited.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        if self.edits.is_empty() {
            return None;
        }
        // Stable: insertions at one position keep the order they were made in.
        self.edits.sort_by_key(|e| (e.start, e.end));
        let grow: usize = self
            .edits
            .iter()
            .map(|e| (e.text_end - e.text_start) as usize)
            .sum();
        let mut out = Vec::with_capacity(self.doc.len() + grow);
        let mut at = 0usize;
        for e in &self.edits {
            debug_assert!(e.start as usize >= at, "edits overlap");
            out.extend_from_slice(&self.doc[at..e.start as usize]);
            out.extend_from_slice(&self.text[e.text_start as usize..e.text_end as usize]);
            at = e.end as usize;
        }
        out.extend_from_slice(&self.doc[at..]);
        Some(out)
    }
}

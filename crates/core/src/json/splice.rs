//! Edits of a document's bytes: replace, remove or insert ranges, applied in one copy.

use std::cell::Cell;

/// Edits kept without a heap allocation; more spill to a `Vec`.
const INLINE_EDITS: usize = 4;

/// Replacement text buffers larger than this are not kept for the next splice.
const KEPT_TEXT: usize = 4096;

thread_local! {
    /// The replacement text buffer, reused from one splice to the next on a thread.
    static TEXT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Pending edits of one document; ranges must not overlap (an insertion may sit at the start or
/// end of another edit's range).
///
/// A few edits (the usual mask or exclusion) cost no allocation but the output's (the
/// replacement text goes to a buffer reused on the thread); the output is allocated at its
/// exact length, so turning it into `Bytes` does not allocate again.
#[derive(Debug)]
pub struct Splice<'d> {
    doc: &'d [u8],
    inline: [Edit; INLINE_EDITS],
    len: usize,
    spill: Vec<Edit>,
    text: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default)]
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
            inline: [Edit::default(); INLINE_EDITS],
            len: 0,
            spill: Vec::new(),
            text: TEXT.try_with(Cell::take).unwrap_or_default(),
        }
    }

    /// The document being edited.
    pub fn doc(&self) -> &'d [u8] {
        self.doc
    }

    /// True when nothing was edited.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn edits(&self) -> &[Edit] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }

    /// Replaces `start..end` with what `write` appends to the buffer it is given.
    pub fn replace_with(&mut self, start: u32, end: u32, write: impl FnOnce(&mut Vec<u8>)) {
        let text_start = self.text.len() as u32;
        write(&mut self.text);
        let edit = Edit {
            start,
            end,
            text_start,
            text_end: self.text.len() as u32,
        };
        if self.len < INLINE_EDITS {
            self.inline[self.len] = edit;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(edit);
        }
        self.len += 1;
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
        self.edits()
            .iter()
            .any(|e| start < e.end && e.start < end || start == e.start && end == e.end)
    }

    /// The edited document, or `None` when nothing was edited.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        if self.len == 0 {
            return None;
        }
        let edits: &mut [Edit] = if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        };
        // Stable: insertions at one position keep the order they were made in.
        edits.sort_by_key(|e| (e.start, e.end));
        let (grow, shrink) = edits.iter().fold((0usize, 0usize), |(g, s), e| {
            (
                g + (e.text_end - e.text_start) as usize,
                s + (e.end - e.start) as usize,
            )
        });
        let mut out = Vec::with_capacity(self.doc.len() + grow - shrink);
        let mut at = 0usize;
        for e in edits.iter() {
            debug_assert!(e.start as usize >= at, "edits overlap");
            out.extend_from_slice(&self.doc[at..e.start as usize]);
            out.extend_from_slice(&self.text[e.text_start as usize..e.text_end as usize]);
            at = e.end as usize;
        }
        out.extend_from_slice(&self.doc[at..]);
        debug_assert_eq!(out.len(), out.capacity(), "the output is sized exactly");
        Some(out)
    }
}

impl Drop for Splice<'_> {
    fn drop(&mut self) {
        let mut text = std::mem::take(&mut self.text);
        if text.capacity() <= KEPT_TEXT {
            text.clear();
            // During the thread's teardown the buffer is simply freed.
            let _ = TEXT.try_with(|t| t.set(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_edits_in_any_order_apply_in_document_order_at_the_exact_length() {
        let doc = b"0123456789abcdef";
        let mut s = Splice::new(doc);
        // More than the inline edits, out of order, with an insertion and a removal.
        s.replace(14, 16, b"EF");
        s.remove(0, 2);
        s.replace(4, 5, b"[four]");
        s.replace_with(8, 8, |b| b.extend_from_slice(b"^"));
        s.replace(10, 12, b"");
        s.replace(6, 7, b"six");
        assert!(s.overlaps(4, 5));
        assert!(s.overlaps(8, 8));
        assert!(!s.overlaps(2, 4));
        let out = s.finish().unwrap();
        assert_eq!(out, b"23[four]5six7^89cdEF");
        assert_eq!(out.len(), out.capacity());
    }

    #[test]
    fn a_reused_text_buffer_starts_empty() {
        let mut s = Splice::new(b"[1,2]");
        s.replace(1, 2, b"\"one\"");
        assert_eq!(s.finish().unwrap(), b"[\"one\",2]");
        // Dropped without finishing: its text must not reach the next splice either.
        let mut s = Splice::new(b"[1,2]");
        s.replace(3, 4, b"22");
        drop(s);
        let mut s = Splice::new(b"[1,2]");
        s.replace(3, 4, b"two");
        assert_eq!(s.finish().unwrap(), b"[1,two]");
    }

    #[test]
    fn no_edits_is_none() {
        assert!(Splice::new(b"{}").finish().is_none());
    }
}

//! A source's `topic_pattern`: written in Rust's `regex` syntax (what Weir documents and what the
//! operations API matches topic names with), and subscribed as the POSIX extended regular
//! expression librdkafka runs (`regcomp(REG_EXTENDED)`), translated from the parsed pattern so
//! both match the same topics. POSIX reads many Rust escapes differently (`\d` is the letter `d`,
//! `(?i)` is a syntax error), so the pattern is never passed through as written.
//!
//! Kafka topic names use only ASCII letters, digits, `.`, `_` and `-`, so every class is
//! narrowed to those characters, which POSIX writes the same way in every locale. What has no
//! POSIX equivalent (word boundaries, a character no topic name can hold, repetitions above 255)
//! is refused with the reason.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// A `topic_pattern` Weir cannot subscribe with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// Not a valid Rust regular expression.
    #[error("invalid regular expression: {0}")]
    Syntax(String),
    /// Valid, but librdkafka's POSIX regular expressions cannot express it.
    #[error("{0}")]
    Untranslatable(String),
}

/// A compiled `topic_pattern`: the Rust regex and the same pattern for librdkafka.
#[derive(Debug, Clone)]
pub struct TopicPattern {
    /// Matches topic names as the source subscribes them (anchored at the start).
    pub regex: regex::Regex,
    /// The subscription for librdkafka: a POSIX extended regular expression starting with `^`
    /// (librdkafka treats a subscription starting with `^` as a pattern).
    pub subscription: String,
}

/// The characters a Kafka topic name may hold.
fn topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

const TOPIC_CHARS: &str = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

impl TopicPattern {
    /// Parses `pattern` (anchored at the start: `orders-.*` matches `orders-eu`, not
    /// `old-orders-eu`; add `$` to anchor the end) and translates it for librdkafka.
    pub fn new(pattern: &str) -> Result<TopicPattern, PatternError> {
        let anchored = if pattern.starts_with('^') {
            pattern.to_owned()
        } else {
            format!("^(?:{pattern})")
        };
        let regex =
            regex::Regex::new(&anchored).map_err(|e| PatternError::Syntax(e.to_string()))?;
        let hir = regex_syntax::Parser::new()
            .parse(&anchored)
            .map_err(|e| PatternError::Syntax(e.to_string()))?;
        let mut ere = String::new();
        translate(&hir, &mut ere)?;
        // Unanchored alternatives (`^a|b`) keep matching anywhere behind a leading `^.*`.
        let subscription = if ere.starts_with('^') {
            ere
        } else {
            format!("^.*({ere})")
        };
        Ok(TopicPattern {
            regex,
            subscription,
        })
    }
}

/// The topic-name characters a class matches, as a POSIX bracket expression or a single
/// character; `None` when it matches none of them.
fn bracket(members: impl Fn(char) -> bool) -> Option<String> {
    let chars: Vec<char> = TOPIC_CHARS.chars().filter(|c| members(*c)).collect();
    match chars.as_slice() {
        [] => None,
        [c] => Some(literal_char(*c)),
        _ => {
            // Runs of consecutive characters become ranges; `-` goes last, where POSIX reads it
            // as itself.
            let mut out = String::from("[");
            let dash = chars.contains(&'-');
            let rest: Vec<char> = chars.into_iter().filter(|c| *c != '-').collect();
            let mut i = 0;
            while i < rest.len() {
                let mut j = i;
                while j + 1 < rest.len() && rest[j + 1] as u32 == rest[j] as u32 + 1 {
                    j += 1;
                }
                if j >= i + 2 {
                    out.push(rest[i]);
                    out.push('-');
                    out.push(rest[j]);
                } else {
                    out.extend(&rest[i..=j]);
                }
                i = j + 1;
            }
            if dash {
                out.push('-');
            }
            out.push(']');
            Some(out)
        }
    }
}

fn literal_char(c: char) -> String {
    if c == '.' {
        "\\.".to_owned()
    } else {
        c.to_string()
    }
}

fn never(what: &str) -> PatternError {
    PatternError::Untranslatable(format!(
        "{what} can never appear in a Kafka topic name (ASCII letters, digits, `.`, `_` and `-`)"
    ))
}

fn translate(hir: &Hir, out: &mut String) -> Result<(), PatternError> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(lit) => {
            let text =
                std::str::from_utf8(&lit.0).map_err(|_| never("a byte that is not UTF-8 text"))?;
            for c in text.chars() {
                if !topic_char(c) {
                    return Err(never(&format!("{c:?}")));
                }
                out.push_str(&literal_char(c));
            }
        }
        HirKind::Class(class) => {
            let b = match class {
                Class::Unicode(u) => {
                    bracket(|c| u.ranges().iter().any(|r| r.start() <= c && c <= r.end()))
                }
                Class::Bytes(b) => bracket(|c| {
                    b.ranges()
                        .iter()
                        .any(|r| r.start() <= c as u8 && c as u8 <= r.end())
                }),
            };
            out.push_str(
                &b.ok_or_else(|| never("a character class that matches only characters that"))?,
            );
        }
        HirKind::Look(look) => match look {
            // Topic names hold no line breaks: line anchors are text anchors.
            Look::Start | Look::StartLF | Look::StartCRLF => out.push('^'),
            Look::End | Look::EndLF | Look::EndCRLF => out.push('$'),
            other => {
                return Err(PatternError::Untranslatable(format!(
                    "{other:?} (a word boundary such as `\\b`) has no equivalent in librdkafka's POSIX regular expressions; use `^`, `$` or `[._-]` instead"
                )));
            }
        },
        HirKind::Repetition(rep) => {
            if rep.max.unwrap_or(rep.min) > 255 {
                return Err(PatternError::Untranslatable(format!(
                    "a repetition of up to {} times: librdkafka's POSIX regular expressions repeat at most 255 times",
                    rep.max.unwrap_or(rep.min)
                )));
            }
            out.push('(');
            translate(&rep.sub, out)?;
            out.push(')');
            // Greedy or lazy only changes what a match spans, never whether a name matches.
            match (rep.min, rep.max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (m, None) => out.push_str(&format!("{{{m},}}")),
                (m, Some(n)) if m == n => out.push_str(&format!("{{{m}}}")),
                (m, Some(n)) => out.push_str(&format!("{{{m},{n}}}")),
            }
        }
        HirKind::Capture(cap) => {
            out.push('(');
            translate(&cap.sub, out)?;
            out.push(')');
        }
        HirKind::Concat(parts) => {
            for p in parts {
                translate(p, out)?;
            }
        }
        HirKind::Alternation(alts) => {
            // POSIX leaves empty alternatives undefined: `(a|)` is written `(a)?`.
            let mut branches = Vec::new();
            let mut optional = false;
            for a in alts {
                let mut s = String::new();
                translate(a, &mut s)?;
                if s.is_empty() {
                    optional = true;
                } else {
                    branches.push(s);
                }
            }
            if !branches.is_empty() {
                out.push('(');
                out.push_str(&branches.join("|"));
                out.push(')');
                if optional {
                    out.push('?');
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(p: &str) -> String {
        TopicPattern::new(p).unwrap().subscription
    }

    #[test]
    fn rust_escapes_and_flags_become_posix_classes() {
        assert_eq!(sub(r"orders-\d+"), "^orders-([0-9])+");
        assert_eq!(sub(r"^orders-\d+$"), "^orders-([0-9])+$");
        assert_eq!(sub("(?i)eu"), "^[Ee][Uu]");
        assert_eq!(sub(r"t\.\w"), "^t\\.[0-9A-Z_a-z]");
        assert_eq!(sub("a.b"), "^a[.0-9A-Z_a-z-]b");
        assert_eq!(sub("x{2,3}y*?"), "^(x){2,3}(y)*");
        assert_eq!(sub("^a|b"), "^.*((^a|b))");
        assert_eq!(sub("a(b|)"), "^a((b)?)");
    }

    #[test]
    fn what_posix_cannot_say_is_refused_with_the_reason() {
        let e = TopicPattern::new(r"\borders").unwrap_err().to_string();
        assert!(e.contains("word boundary"), "{e}");
        let e = TopicPattern::new("orders@eu").unwrap_err().to_string();
        assert!(e.contains("'@'") && e.contains("topic name"), "{e}");
        let e = TopicPattern::new("a{300}").unwrap_err().to_string();
        assert!(e.contains("255"), "{e}");
        let e = TopicPattern::new("(?=x)").unwrap_err();
        assert!(matches!(e, PatternError::Syntax(_)), "{e}");
    }

    #[test]
    fn the_rust_regex_is_anchored_at_the_start_like_the_subscription() {
        let p = TopicPattern::new("orders-.*").unwrap();
        assert!(p.regex.is_match("orders-eu"));
        assert!(!p.regex.is_match("old-orders-eu"));
    }

    /// The translation against a real POSIX engine: GNU `grep -E` (glibc's regex code, as
    /// librdkafka's `regcomp(REG_EXTENDED)`) selects exactly the names the Rust regex matches.
    #[test]
    fn posix_grep_selects_the_same_topics_as_the_rust_regex() {
        let names = [
            "orders-1",
            "orders-d",
            "orders-12",
            "orders-",
            "Orders-7",
            "ORDERS-eu",
            "orders.eu",
            "ordersXeu",
            "old-orders-1",
            "a",
            "b",
            "ab",
            "ba",
            "xb",
            "t.x",
            "t-x",
            "t_",
            "tt",
            "abc",
            "abbc",
            "ac",
            "e-u",
            "EU",
            "eu",
        ];
        let patterns = [
            r"orders-\d+",
            r"orders-\d$",
            r"(?i)orders-",
            r"orders\.eu",
            r"orders.eu",
            r"^a|b",
            r"t\.\w",
            r"t[^.]",
            r"ab{1,2}c",
            r"ab*?c",
            r"a(b|)c?$",
            r"(?i:e)-?u$",
            r"[[:digit:]]",
            r"\w+-\d+$",
            r"(?-u:\w)+",
            r"[^a-z]",
        ];
        for p in patterns {
            let tp = TopicPattern::new(p).unwrap();
            let mut grep = std::process::Command::new("grep")
                .args(["-E", "--", &tp.subscription])
                .env("LC_ALL", "C")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("grep (GNU grep, a POSIX regex engine) must be installed for this test");
            {
                use std::io::Write;
                let mut stdin = grep.stdin.take().unwrap();
                stdin.write_all(names.join("\n").as_bytes()).unwrap();
                stdin.write_all(b"\n").unwrap();
            }
            let out = grep.wait_with_output().unwrap();
            assert!(
                out.status.code().is_some_and(|c| c <= 1),
                "grep refused {:?} (from {p:?}): {}",
                tp.subscription,
                String::from_utf8_lossy(&out.stderr)
            );
            let posix: Vec<&str> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| names.iter().find(|n| **n == l).copied().unwrap())
                .collect();
            let rust: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| tp.regex.is_match(n))
                .collect();
            assert_eq!(posix, rust, "{p:?} subscribed as {:?}", tp.subscription);
        }
    }
}

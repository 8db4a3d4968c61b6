//! Exact comparison of JSON numbers as written: `9007199254740993` is not `9007199254740992`,
//! `300` equals `300.0` and `3e2`, and nothing goes through a 64-bit float.

use std::cmp::Ordering;

/// A number's text split into sign, digits and exponent, without allocating.
#[derive(Debug, Clone, Copy)]
struct Decimal<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i64,
}

fn parse(b: &[u8]) -> Option<Decimal<'_>> {
    let (negative, rest) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    // One pass: integer digits, an optional fraction, then nothing or an exponent.
    let digits_from = |mut i: usize| {
        while rest.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let int_end = digits_from(0);
    let int = &rest[..int_end];
    let (frac, mantissa_end) = if rest.get(int_end) == Some(&b'.') {
        let end = digits_from(int_end + 1);
        (&rest[int_end + 1..end], end)
    } else {
        (&rest[int_end..int_end], int_end)
    };
    let exp: i64 = match rest.get(mantissa_end) {
        None => 0,
        Some(b'e' | b'E') => {
            let e = std::str::from_utf8(&rest[mantissa_end + 1..]).ok()?;
            // Exponents beyond this are far outside any number Weir compares; saturate.
            e.parse::<i64>()
                .unwrap_or(if e.starts_with('-') {
                    -1 << 40
                } else {
                    1 << 40
                })
                .clamp(-(1 << 40), 1 << 40)
        }
        Some(_) => return None,
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    Some(Decimal {
        negative,
        int,
        frac,
        exp,
    })
}

impl Decimal<'_> {
    fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        self.int.iter().chain(self.frac).copied()
    }

    /// The significant digits and the power of ten of the first one (`0.d1d2… × 10^e`), or
    /// `None` for zero.
    fn significant(&self) -> Option<(impl Iterator<Item = u8> + '_, i64)> {
        let leading = self.digits().take_while(|d| *d == b'0').count();
        if leading == self.int.len() + self.frac.len() {
            return None;
        }
        Some((
            self.digits().skip(leading),
            self.int.len() as i64 - leading as i64 + self.exp,
        ))
    }
}

fn cmp_magnitude(a: &Decimal<'_>, b: &Decimal<'_>) -> Ordering {
    match (a.significant(), b.significant()) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some((mut da, ea)), Some((mut db, eb))) => ea.cmp(&eb).then_with(|| {
            loop {
                match (da.next(), db.next()) {
                    (None, None) => return Ordering::Equal,
                    (x, y) => {
                        let (x, y) = (x.unwrap_or(b'0'), y.unwrap_or(b'0'));
                        if x != y {
                            return x.cmp(&y);
                        }
                    }
                }
            }
        }),
    }
}

/// Compares two JSON number texts exactly; `None` when either is not a number.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    compare_bytes(a.as_bytes(), b.as_bytes())
}

/// [`compare`] on the numbers' bytes (as a scan finds them in a document).
pub fn compare_bytes(a: &[u8], b: &[u8]) -> Option<Ordering> {
    Some(compare_decimals(parse(a)?, parse(b)?))
}

/// A pattern's bound, parsed once when the pattern compiles.
#[derive(Debug, Clone)]
pub struct Bound {
    text: String,
    negative: bool,
    int: (usize, usize),
    frac: (usize, usize),
    exp: i64,
}

impl Bound {
    /// The bound `text`, or `None` when it is not a number.
    pub fn new(text: String) -> Option<Bound> {
        let d = parse(text.as_bytes())?;
        let at = |part: &[u8]| {
            let start = part.as_ptr() as usize - text.as_ptr() as usize;
            (start, start + part.len())
        };
        let (int, frac) = (at(d.int), at(d.frac));
        Some(Bound {
            negative: d.negative,
            exp: d.exp,
            int,
            frac,
            text,
        })
    }

    fn decimal(&self) -> Decimal<'_> {
        let b = self.text.as_bytes();
        Decimal {
            negative: self.negative,
            int: &b[self.int.0..self.int.1],
            frac: &b[self.frac.0..self.frac.1],
            exp: self.exp,
        }
    }
}

/// [`compare_bytes`] against a parsed bound.
pub fn compare_to_bound(a: &[u8], bound: &Bound) -> Option<Ordering> {
    Some(compare_decimals(parse(a)?, bound.decimal()))
}

fn compare_decimals(a: Decimal<'_>, b: Decimal<'_>) -> Ordering {
    let (za, zb) = (a.significant().is_none(), b.significant().is_none());
    let (na, nb) = (a.negative && !za, b.negative && !zb);
    match (na, nb) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => cmp_magnitude(&a, &b),
        (true, true) => cmp_magnitude(&b, &a),
    }
}

/// True when the number is within the range of a double (±1.7976931348623157e308), the range
/// numeric patterns accept as bounds.
pub fn within_double_range(text: &str) -> bool {
    compare(text, "1.7976931348623157e308").is_some_and(|o| o != Ordering::Greater)
        && compare(text, "-1.7976931348623157e308").is_some_and(|o| o != Ordering::Less)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_beyond_doubles_compare_exactly() {
        assert_eq!(
            compare("9007199254740993", "9007199254740992"),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare("12345678901234567890", "12345678901234567891"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(
                "123456789012345678901234567890",
                "123456789012345678901234567890"
            ),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn equal_values_written_differently_are_equal() {
        for (a, b) in [
            ("300", "300.0"),
            ("300", "3e2"),
            ("3E+2", "300.000"),
            ("0", "-0.0"),
            ("0.5", "5e-1"),
            ("-1.50", "-15E-1"),
            ("007", "7"),
        ] {
            assert_eq!(compare(a, b), Some(Ordering::Equal), "{a} vs {b}");
        }
    }

    #[test]
    fn signs_exponents_and_fractions_order_correctly() {
        assert_eq!(compare("-2", "1"), Some(Ordering::Less));
        assert_eq!(compare("-2", "-10"), Some(Ordering::Greater));
        assert_eq!(compare("1e-400", "0"), Some(Ordering::Greater));
        assert_eq!(
            compare("0.1", "0.09999999999999999999"),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare("2.2250738585072011e-308", "2.2250738585072014e-308"),
            Some(Ordering::Less)
        );
        assert_eq!(compare("x", "1"), None);
        assert!(within_double_range("1e308") && !within_double_range("1e400"));
        assert!(within_double_range("-1.7976931348623157e308"));
        assert!(!within_double_range("-1.8e308"));
    }

    #[test]
    fn a_parsed_bound_compares_as_its_text_does() {
        for bound in ["0", "-0.0", "300", "3E+2", "-1.50", "1e-400", "0.5", "007"] {
            let parsed = Bound::new(bound.to_owned()).unwrap();
            for v in [
                "0", "299.99", "300", "3e2", "-1.5", "-2", "0.50", "7", "1e-401",
            ] {
                assert_eq!(
                    compare_to_bound(v.as_bytes(), &parsed),
                    compare(v, bound),
                    "{v} vs {bound}"
                );
            }
        }
        assert!(Bound::new("x".into()).is_none());
    }

    proptest! {
        /// Wherever doubles are exact (integers below 2^53, and values compared with themselves
        /// written another way), the comparison agrees with them.
        #[test]
        fn agrees_with_exact_integers(a in -(1i64 << 53)..(1i64 << 53), b in -(1i64 << 53)..(1i64 << 53)) {
            prop_assert_eq!(compare(&a.to_string(), &b.to_string()), Some(a.cmp(&b)));
            prop_assert_eq!(compare(&a.to_string(), &format!("{a}.000e0")), Some(Ordering::Equal));
        }

        #[test]
        fn agrees_with_doubles_on_their_own_shortest_text(a in any::<f64>(), b in any::<f64>()) {
            prop_assume!(a.is_finite() && b.is_finite());
            prop_assert_eq!(compare(&format!("{a:e}"), &format!("{b:e}")), a.partial_cmp(&b));
        }
    }
}

//! The synthetic transaction model and its seeded pseudo-random generator.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use weir_core::{Origin, Record};

/// A small, fast, seedable PRNG (SplitMix64); statistical quality is ample for test data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One card of the simulated card base.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// 16-digit, Luhn-valid number.
    pub number: String,
    /// Card network.
    pub brand: &'static str,
    /// Card holder.
    pub holder: String,
}

/// A merchant.
#[derive(Debug, Clone, Serialize)]
pub struct Merchant {
    /// Name.
    pub name: &'static str,
    /// Category.
    pub category: &'static str,
}

/// One generated transaction (the record value).
#[derive(Debug, Clone, Serialize)]
pub struct Transaction<'a> {
    /// Transaction id.
    pub id: String,
    /// Card used.
    pub card: &'a Card,
    /// Amount in `currency`.
    pub amount: f64,
    /// ISO currency code.
    pub currency: &'static str,
    /// Merchant.
    pub merchant: &'a Merchant,
    /// ISO country of the merchant.
    pub country: &'static str,
    /// When it happened (RFC 3339).
    pub timestamp: String,
    /// True for the deliberately suspicious transactions.
    pub anomaly: bool,
}

const FIRST: &[&str] = &[
    "Ann", "Bram", "Chloé", "Daan", "Eva", "Femke", "Gijs", "Hana", "Ivo", "Jun", "Kofi", "Lena",
];
const LAST: &[&str] = &[
    "de Vries", "Jansen", "Smith", "García", "Müller", "Okafor", "Tanaka", "Novak", "Rossi",
];
const MERCHANTS: &[Merchant] = &[
    Merchant {
        name: "Corner Grocer",
        category: "groceries",
    },
    Merchant {
        name: "Rail Ticket Office",
        category: "travel",
    },
    Merchant {
        name: "Bean There Coffee",
        category: "restaurants",
    },
    Merchant {
        name: "Pixel Electronics",
        category: "electronics",
    },
    Merchant {
        name: "Page Turner Books",
        category: "books",
    },
    Merchant {
        name: "Fuel Stop",
        category: "fuel",
    },
    Merchant {
        name: "Cloud Subscriptions",
        category: "digital",
    },
    Merchant {
        name: "Luxe Jewels",
        category: "jewellery",
    },
];
const HOME: &[(&str, &str)] = &[
    ("NL", "EUR"),
    ("DE", "EUR"),
    ("BE", "EUR"),
    ("FR", "EUR"),
    ("GB", "GBP"),
    ("US", "USD"),
];
const UNUSUAL: &[(&str, &str)] = &[
    ("KP", "USD"),
    ("RU", "RUB"),
    ("NG", "NGN"),
    ("BR", "BRL"),
    ("VN", "VND"),
];

/// Generates transactions over a fixed base of cards.
#[derive(Debug)]
pub struct TransactionGenerator {
    rng: Rng,
    cards: Vec<(Card, usize)>,
    anomaly_rate: f64,
    prefix: String,
    epoch_ms: i64,
}

fn luhn_complete(digits: &mut Vec<u8>) {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    digits.push(((10 - sum % 10) % 10) as u8);
}

/// True when a digit string passes the Luhn check.
pub fn luhn_valid(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl TransactionGenerator {
    /// A generator for a seed.
    pub fn new(seed: u64, anomaly_rate: f64) -> Self {
        let mut rng = Rng(seed);
        let cards = (0..500)
            .map(|_| {
                let (brand, first) = if rng.below(2) == 0 {
                    ("visa", 4)
                } else {
                    ("mastercard", 5)
                };
                let mut digits = vec![first];
                digits.extend((0..14).map(|_| rng.below(10) as u8));
                luhn_complete(&mut digits);
                let number: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                let holder = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
                (
                    Card {
                        number,
                        brand,
                        holder,
                    },
                    rng.below(HOME.len() as u64) as usize,
                )
            })
            .collect();
        TransactionGenerator {
            rng,
            cards,
            anomaly_rate,
            prefix: format!("txn-{:08x}", seed as u32),
            epoch_ms: 1_767_225_600_000,
        }
    }

    /// The next transaction's JSON bytes and its card number (the key).
    pub fn next_json(&mut self, seq: i64) -> (Vec<u8>, String) {
        let r = &mut self.rng;
        let (card, home) = &self.cards[r.below(self.cards.len() as u64) as usize];
        let anomaly = r.unit() < self.anomaly_rate;
        let ((country, currency), amount) = if anomaly {
            let place = if r.below(2) == 0 {
                *r.pick(UNUSUAL)
            } else {
                HOME[*home]
            };
            (place, 1000.0 + (r.unit() * 9000.0))
        } else {
            // Mostly small amounts, a long tail up to ~900.
            let u = r.unit();
            (HOME[*home], 2.0 + 900.0 * u * u * u)
        };
        let merchant = r.pick(MERCHANTS);
        let ts = self.epoch_ms + seq * 250 + r.below(250) as i64;
        let t = Transaction {
            id: format!("{}-{seq:09}", self.prefix),
            card,
            amount: (amount * 100.0).round() / 100.0,
            currency,
            merchant,
            country,
            timestamp: weir_core::time::rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ts as u64),
            ),
            anomaly,
        };
        (
            serde_json::to_vec(&t).expect("serializable"),
            card.number.clone(),
        )
    }

    /// The next transaction as a record.
    pub fn record(&mut self, topic: &Arc<str>, seq: i64) -> Record {
        let (json, key) = self.next_json(seq);
        let mut r = Record::from_bytes(json);
        r.key = Some(Bytes::from(key));
        r.timestamp = Some(weir_core::time::now_millis());
        r.meta.origin = Some(Origin {
            topic: topic.clone(),
            partition: 0,
            offset: seq,
        });
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_luhn_valid_and_records_about_300_bytes() {
        let mut g = TransactionGenerator::new(1, 0.03);
        let mut total = 0;
        for i in 0..200 {
            let (json, key) = g.next_json(i);
            assert!(luhn_valid(&key), "{key}");
            assert_eq!(key.len(), 16);
            let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(v["card"]["number"], key);
            total += json.len();
        }
        let avg = total / 200;
        assert!((220..=380).contains(&avg), "average record size {avg}");
    }
}

//! The record batches of a partition as the broker holds them, read with a raw Kafka `Fetch`
//! (v4) over TCP: no librdkafka, no Weir code, so a test can check what a producer really wrote
//! (the compression codec in each batch's attributes), not what a consumer decoded.
//!
//! Only what the tests need: one partition, from offset 0 to the high watermark, batch headers
//! (base offset, record count, attributes), magic-2 batches.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Compression codecs as Kafka numbers them in a batch's attributes (bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// 0.
    None,
    /// 1.
    Gzip,
    /// 2.
    Snappy,
    /// 3.
    Lz4,
    /// 4.
    Zstd,
    /// Anything else (not a valid batch).
    Other(u8),
}

impl Codec {
    fn from_attributes(attributes: i16) -> Codec {
        match attributes & 0x7 {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            n => Codec::Other(n as u8),
        }
    }

    /// The codec named as in librdkafka's `compression.codec` (`none`, `gzip`, `snappy`, `lz4`,
    /// `zstd`).
    pub fn named(name: &str) -> Codec {
        match name {
            "none" => Codec::None,
            "gzip" => Codec::Gzip,
            "snappy" => Codec::Snappy,
            "lz4" => Codec::Lz4,
            "zstd" => Codec::Zstd,
            other => panic!("unknown codec {other}"),
        }
    }
}

/// One record batch's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of its first record.
    pub base_offset: i64,
    /// Records in it.
    pub records: i32,
    /// Offset of its last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// The magic byte (2 for every broker since Kafka 0.11).
    pub magic: i8,
    /// The compression codec of its records.
    pub codec: Codec,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// A Fetch v4 request for `topic[partition]` from `offset`.
fn fetch_request(correlation: i32, topic: &str, partition: i32, offset: i64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1i16.to_be_bytes()); // api key: Fetch
    b.extend_from_slice(&4i16.to_be_bytes()); // version 4
    b.extend_from_slice(&correlation.to_be_bytes());
    put_str(&mut b, "weir-testkit-batches");
    b.extend_from_slice(&(-1i32).to_be_bytes()); // replica id: a consumer
    b.extend_from_slice(&100i32.to_be_bytes()); // max wait ms
    b.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    b.extend_from_slice(&(16i32 << 20).to_be_bytes()); // max bytes
    b.push(0); // isolation level: read uncommitted
    b.extend_from_slice(&1i32.to_be_bytes()); // one topic
    put_str(&mut b, topic);
    b.extend_from_slice(&1i32.to_be_bytes()); // one partition
    b.extend_from_slice(&partition.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&(16i32 << 20).to_be_bytes()); // partition max bytes
    let mut framed = (b.len() as i32).to_be_bytes().to_vec();
    framed.extend(b);
    framed
}

/// A cursor over a response, panicking with a clear message on truncation.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(
            self.at + n <= self.buf.len(),
            "truncated Fetch response: need {n} bytes at {}, have {}",
            self.at,
            self.buf.len()
        );
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        s
    }
    fn i8(&mut self) -> i8 {
        self.take(1)[0] as i8
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.i16();
        String::from_utf8_lossy(self.take(n.max(0) as usize)).into_owned()
    }
}

/// What one fetch returned for the partition: its high watermark and the complete batches.
fn parse_fetch(body: &[u8]) -> (i64, Vec<BatchHeader>) {
    let mut c = Cursor { buf: body, at: 0 };
    let _throttle = c.i32();
    let topics = c.i32();
    assert_eq!(topics, 1, "Fetch answered {topics} topics, asked for one");
    let _topic = c.string();
    let partitions = c.i32();
    assert_eq!(partitions, 1, "Fetch answered {partitions} partitions");
    let _partition = c.i32();
    let error = c.i16();
    assert_eq!(error, 0, "Fetch error code {error}");
    let high = c.i64();
    let _last_stable = c.i64();
    let aborted = c.i32();
    for _ in 0..aborted.max(0) {
        c.i64();
        c.i64();
    }
    let len = c.i32();
    let records = c.take(len.max(0) as usize);
    let mut batches = Vec::new();
    let mut r = Cursor {
        buf: records,
        at: 0,
    };
    // A fetch may end inside a batch; only complete ones count.
    while r.buf.len() - r.at >= 12 {
        let start = r.at;
        let base_offset = r.i64();
        let length = r.i32() as usize;
        if r.buf.len() - r.at < length {
            break;
        }
        let _leader_epoch = r.i32();
        let magic = r.i8();
        let _crc = r.i32();
        let attributes = r.i16();
        let last_offset_delta = r.i32();
        r.at += 8 + 8 + 8 + 2 + 4; // timestamps, producer id and epoch, base sequence
        let count = r.i32();
        batches.push(BatchHeader {
            base_offset,
            records: count,
            last_offset_delta,
            magic,
            codec: Codec::from_attributes(attributes),
        });
        r.at = start + 12 + length;
    }
    (high, batches)
}

fn round_trip(stream: &mut TcpStream, request: &[u8], correlation: i32) -> Vec<u8> {
    stream
        .write_all(request)
        .expect("cannot send the Fetch request");
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .expect("no answer to the Fetch request");
    let mut answer = vec![0u8; i32::from_be_bytes(len) as usize];
    stream
        .read_exact(&mut answer)
        .expect("truncated Fetch answer");
    let got = i32::from_be_bytes(answer[..4].try_into().unwrap());
    assert_eq!(got, correlation, "Fetch answer for another request");
    answer.split_off(4)
}

/// Every batch of `topic[partition]` from offset 0 to the high watermark, as the broker at
/// `bootstrap` (the partition's leader: a one-broker test cluster) holds them. Blocking; fails
/// the test when the batches do not reach the high watermark within `timeout`.
pub fn partition_batches(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Vec<BatchHeader> {
    let mut stream = TcpStream::connect(bootstrap)
        .unwrap_or_else(|e| panic!("cannot connect to the broker at {bootstrap}: {e}"));
    stream.set_read_timeout(Some(timeout)).unwrap();
    let start = Instant::now();
    let mut batches: Vec<BatchHeader> = Vec::new();
    let mut next = 0i64;
    for correlation in 1.. {
        let request = fetch_request(correlation, topic, partition, next);
        let (high, got) = parse_fetch(&round_trip(&mut stream, &request, correlation));
        for b in got {
            if b.base_offset < next {
                continue; // a broker may answer from the start of a batch we already have
            }
            next = b.base_offset + i64::from(b.last_offset_delta) + 1;
            batches.push(b);
        }
        if next >= high {
            break;
        }
        assert!(
            start.elapsed() < timeout,
            "{topic}[{partition}]: batches up to offset {next} of {high} after {timeout:?}"
        );
    }
    batches
}

//! The baseline for Weir's Kafka throughput: the least a Kafka → Kafka relay can do with
//! librdkafka (poll, produce with the same settings as Weir's sink, commit automatically), plus
//! the helpers the bench script needs (produce a backlog, wait for a topic to fill).
//!
//!   kafka-relay-baseline produce <brokers> <topic> <count> <bytes>
//!   kafka-relay-baseline relay   <brokers> <in> <out> <group> <count>
//!   kafka-relay-baseline wait    <brokers> <topic> <partitions> <count> <timeout-secs>

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "50") // Weir's default `linger` (decision 94)
        .set("batch.size", "1048576")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer")
}

fn send(p: &BaseProducer, mut r: BaseRecord<'_, [u8], [u8]>) {
    loop {
        match p.send(r) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                r = back;
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("produce failed: {e}"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .unwrap_or_else(|| panic!("missing argument {i}; see the module docs"))
    };
    match arg(1).as_str() {
        "produce" => {
            let (brokers, topic) = (arg(2), arg(3));
            let count: usize = arg(4).parse().unwrap();
            let size: usize = arg(5).parse().unwrap();
            let p = producer(&brokers);
            let pad = "x".repeat(size.saturating_sub(80));
            for i in 0..count {
                let value = format!(
                    "{{\"seq\":{i},\"amount\":{},\"country\":\"{}\",\"pad\":\"{pad}\"}}",
                    i % 1000,
                    if i % 4 == 0 { "NL" } else { "US" }
                );
                let key = format!("k{}", i % 1000);
                send(
                    &p,
                    BaseRecord::to(&topic)
                        .key(key.as_bytes())
                        .payload(value.as_bytes()),
                );
                if i % 1000 == 0 {
                    p.poll(Duration::ZERO);
                }
            }
            p.flush(Duration::from_secs(120)).expect("flush");
        }
        "relay" => {
            let (brokers, input, output, group) = (arg(2), arg(3), arg(4), arg(5));
            let count: usize = arg(6).parse().unwrap();
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", &group)
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "6000")
                .create()
                .expect("consumer");
            c.subscribe(&[&input]).expect("subscribe");
            let p = producer(&brokers);
            let mut n = 0;
            while n < count {
                match c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let mut r =
                            BaseRecord::to(&output).payload(m.payload().unwrap_or_default());
                        if let Some(k) = m.key() {
                            r = r.key(k);
                        }
                        send(&p, r);
                        n += 1;
                        if n % 1000 == 0 {
                            p.poll(Duration::ZERO);
                        }
                    }
                    Some(Err(e)) => eprintln!("consume error: {e}"),
                    None => {
                        p.poll(Duration::ZERO);
                    }
                }
            }
            p.flush(Duration::from_secs(120)).expect("flush");
        }
        "wait" => {
            let (brokers, topic) = (arg(2), arg(3));
            let partitions: i32 = arg(4).parse().unwrap();
            let count: i64 = arg(5).parse().unwrap();
            let timeout = Duration::from_secs(arg(6).parse().unwrap());
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .expect("client");
            let start = Instant::now();
            loop {
                let n: i64 = (0..partitions)
                    .map(|p| {
                        c.fetch_watermarks(&topic, p, Duration::from_secs(5))
                            .map(|w| w.1)
                            .unwrap_or(0)
                    })
                    .sum();
                if n >= count {
                    break;
                }
                if start.elapsed() > timeout {
                    eprintln!("only {n} of {count} records in {topic} after {timeout:?}");
                    std::process::exit(1);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        other => panic!("unknown command {other}; see the module docs"),
    }
}

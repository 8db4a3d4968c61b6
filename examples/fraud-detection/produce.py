#!/usr/bin/env python3
"""Produces Avro card transactions for the fraud-detection example, the way a card processor
would: Confluent's AvroSerializer, the schema registered under `<topic>-value`.

    python3 examples/fraud-detection/produce.py --count 1000
    python3 examples/fraud-detection/produce.py --count 1000 --echo sent.jsonl   # also log them

Needs `pip install confluent-kafka fastavro requests attrs cachetools authlib httpx`.
KAFKA and SCHEMA_REGISTRY default to the brokers scripts/dev-kafka.sh and scripts/dev-registry.sh start.
"""

import argparse
import datetime as dt
import json
import os
import random
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

HERE = os.path.dirname(os.path.abspath(__file__))
CATEGORIES = ["grocery", "travel", "electronics", "restaurant", "gambling", "crypto"]
COUNTRIES = ["NL", "DE", "FR", "US", "GB"]
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc)


def transaction(rng, i):
    """Mostly ordinary payments; about one in twelve is a large one, and card-not-present
    gambling and crypto payments occur too."""
    large = rng.random() < 1 / 12
    return {
        "transaction_id": "tx-%06d" % i,
        "card_id": "card-%04d" % rng.randrange(200),
        "amount": round(rng.uniform(3000, 20000) if large else rng.uniform(1, 400), 2),
        "currency": rng.choice(["EUR", "EUR", "USD", "GBP"]),
        "merchant_category": rng.choice(CATEGORIES),
        "card_present": rng.random() < 0.6,
        "country": rng.choice(COUNTRIES),
        "device_id": None if rng.random() < 0.3 else "dev-%03d" % rng.randrange(500),
        "timestamp": START + dt.timedelta(seconds=i * 7, milliseconds=rng.randrange(1000)),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--topic", default="card-transactions")
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA", "127.0.0.1:9092"))
    ap.add_argument("--registry", default=os.environ.get("SCHEMA_REGISTRY", "http://127.0.0.1:8081"))
    ap.add_argument("--echo", help="also write each transaction as a JSON line to this file")
    a = ap.parse_args()

    with open(os.path.join(HERE, "transaction.avsc")) as f:
        schema = f.read()
    serialize = AvroSerializer(SchemaRegistryClient({"url": a.registry}), schema)
    producer = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    errors = []
    echo = open(a.echo, "w") if a.echo else None
    rng = random.Random(a.seed)
    for i in range(a.count):
        t = transaction(rng, i)
        value = serialize(t, SerializationContext(a.topic, MessageField.VALUE))
        producer.produce(a.topic, key=t["card_id"], value=value,
                         on_delivery=lambda err, _m: err and errors.append(str(err)))
        producer.poll(0)
        if echo:
            millis = (t["timestamp"] - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(milliseconds=1)
            echo.write(json.dumps(dict(t, timestamp=millis)) + "\n")
    left = producer.flush(60)
    if echo:
        echo.close()
    if left or errors:
        sys.exit("%d transactions undelivered; errors: %s" % (left, errors[:3]))
    print("produced %d transactions to %s" % (a.count, a.topic))


if __name__ == "__main__":
    main()

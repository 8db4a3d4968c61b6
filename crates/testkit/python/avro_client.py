#!/usr/bin/env python3
"""The third-party side of Weir's Avro interop tests: Confluent's own Python client.

    produce  --bootstrap B --registry R --topic T --schema v1|v2 --start S --count N --expected F
        Serializes card transactions with confluent-kafka's AvroSerializer (registering the
        schema under the topic's value subject) and writes, one JSON object per line, what Weir's
        documented Avro -> JSON mapping (docs/connectors/formats.md) should turn each into:
        {"integer": <timestamps as integers>, "rfc3339": <timestamps as RFC 3339 text>}.
        These expectations are computed here, from Python's own values, not by Weir.

    consume  --bootstrap B --registry R --topic T --count N --out F
        Reads N records with AvroDeserializer and writes them as JSON lines in the same mapping
        (integer timestamps), so a test can compare them with what it gave Weir.

    expected --schema v1|v2 --start S --count N
        Prints the same expectations as `produce` without producing (input for Weir's encoder).

    schema --schema v1|v2
        Prints the schema.

Records are generated from their sequence number, so both sides agree on them.
"""

import argparse
import base64
import datetime as dt
import decimal
import hashlib
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_DAY = dt.date(1970, 1, 1)

FIELDS_V1 = [
    {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "seq", "type": "long"},
    {"name": "card", "type": {"type": "fixed", "name": "CardHash", "size": 8}},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "currency", "type": {"type": "enum", "name": "Currency", "symbols": ["EUR", "USD", "GBP"]}},
    {"name": "country", "type": "string"},
    {"name": "merchant", "type": ["null", "string"], "default": None},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "ts_micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "time_ms", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "time_us", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "score", "type": "double"},
    {"name": "flagged", "type": "boolean"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "raw", "type": "bytes"},
]
# v2 adds a field with a default: a backward-compatible evolution.
FIELDS_V2 = FIELDS_V1 + [{"name": "channel", "type": "string", "default": "pos"}]


def schema(version):
    fields = FIELDS_V1 if version == "v1" else FIELDS_V2
    return json.dumps(
        {"type": "record", "name": "Transaction", "namespace": "com.example.cards", "fields": fields}
    )


def transaction(seq, version):
    """Python values for the serializer."""
    ms = (seq * 1_000_003) % 86_400_000
    us = (seq * 123_456_789) % 86_400_000_000
    cents = (seq * 137) % 100_000
    if seq % 11 == 0:
        cents = -cents  # refunds
    t = {
        "id": str(uuid.UUID(int=seq * 7919 + 1)),
        "seq": seq,
        "card": hashlib.sha256(str(seq).encode()).digest()[:8],
        "amount": decimal.Decimal(cents).scaleb(-2),
        "currency": ["EUR", "USD", "GBP"][seq % 3],
        "country": "NL" if seq % 4 == 0 else "US",
        "merchant": None if seq % 5 == 0 else "m%d" % (seq % 17),
        "ts": dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=seq * 1_234_567),
        "ts_micros": dt.datetime(1999, 12, 31, 23, tzinfo=UTC) + dt.timedelta(microseconds=seq * 1_234_567_891),
        "day": dt.date(1969, 7, 20) + dt.timedelta(days=seq * 37),
        "time_ms": (dt.datetime.min + dt.timedelta(milliseconds=ms)).time(),
        "time_us": (dt.datetime.min + dt.timedelta(microseconds=us)).time(),
        "score": seq * 0.1,
        "flagged": seq % 7 == 0,
        "tags": ["t%d" % (seq % 3), "x"][: seq % 3],
        "attrs": {"a": seq, "b": -seq},
        "raw": bytes([seq % 256, 0, 255]),
    }
    if version == "v2":
        t["channel"] = "web" if seq % 2 else "app"
    return t


def frac(micros):
    """RFC 3339 fraction: the digits without trailing zeros, or nothing."""
    return ("." + ("%06d" % micros).rstrip("0")) if micros else ""


def time_of_day_micros(t):
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def to_json(t, rfc3339):
    """The documented mapping, computed from the Python values."""
    out = {}
    for k, v in t.items():
        if isinstance(v, (bytes, bytearray)):
            out[k] = base64.b64encode(v).decode()
        elif isinstance(v, decimal.Decimal):
            out[k] = format(v.quantize(decimal.Decimal("0.01")), "f")
        elif isinstance(v, dt.datetime):
            v = v.astimezone(UTC)
            micros = (v - EPOCH) // dt.timedelta(microseconds=1)
            if rfc3339:
                out[k] = v.strftime("%Y-%m-%dT%H:%M:%S") + frac(v.microsecond) + "Z"
            else:
                out[k] = micros // 1000 if k == "ts" else micros
        elif isinstance(v, dt.date):
            out[k] = v.isoformat() if rfc3339 else (v - EPOCH_DAY).days
        elif isinstance(v, dt.time):
            if rfc3339:
                out[k] = v.strftime("%H:%M:%S") + frac(v.microsecond)
            else:
                micros = time_of_day_micros(v)
                out[k] = micros // 1000 if k == "time_ms" else micros
        elif isinstance(v, uuid.UUID):
            out[k] = str(v)
        else:
            out[k] = v
    return out


def produce(a):
    sr = SchemaRegistryClient({"url": a.registry})
    ser = AvroSerializer(sr, schema(a.schema), conf={"auto.register.schemas": True})
    p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    with open(a.expected, "w") as exp:
        for seq in range(a.start, a.start + a.count):
            t = transaction(seq, a.schema)
            value = ser(t, SerializationContext(a.topic, MessageField.VALUE))
            p.produce(a.topic, key=("k%d" % (seq % 30)).encode(), value=value, on_delivery=report)
            p.poll(0)
            exp.write(json.dumps({"integer": to_json(t, False), "rfc3339": to_json(t, True)}) + "\n")
    left = p.flush(60)
    if left or failures:
        sys.exit("produce: %d undelivered, errors: %s" % (left, failures[:3]))


def consume(a):
    sr = SchemaRegistryClient({"url": a.registry})
    de = AvroDeserializer(sr)
    c = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            "group.id": "python-avro-reader-%s" % uuid.uuid4(),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    c.subscribe([a.topic])
    got = []
    deadline = dt.datetime.now() + dt.timedelta(seconds=a.timeout)
    while len(got) < a.count and dt.datetime.now() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            sys.exit("consume: %s" % m.error())
        v = de(m.value(), SerializationContext(a.topic, MessageField.VALUE))
        got.append({"partition": m.partition(), "offset": m.offset(), "value": to_json(v, False)})
    c.close()
    with open(a.out, "w") as f:
        for g in got:
            f.write(json.dumps(g) + "\n")
    if len(got) < a.count:
        sys.exit("consume: %d of %d records within %ss" % (len(got), a.count, a.timeout))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--schema", choices=["v1", "v2"], default="v1")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--expected", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--timeout", type=float, default=90)
    s = sub.add_parser("schema")
    s.add_argument("--schema", choices=["v1", "v2"], default="v1")
    e = sub.add_parser("expected")
    e.add_argument("--schema", choices=["v1", "v2"], default="v1")
    e.add_argument("--start", type=int, default=0)
    e.add_argument("--count", type=int, required=True)
    for x in (p, c):
        x.add_argument("--bootstrap", required=True)
        x.add_argument("--registry", required=True)
        x.add_argument("--topic", required=True)
    a = ap.parse_args()
    if a.cmd == "schema":
        print(schema(a.schema))
    elif a.cmd == "expected":
        for seq in range(a.start, a.start + a.count):
            t = transaction(seq, a.schema)
            print(json.dumps({"integer": to_json(t, False), "rfc3339": to_json(t, True)}))
    else:
        {"produce": produce, "consume": consume}[a.cmd](a)


if __name__ == "__main__":
    main()

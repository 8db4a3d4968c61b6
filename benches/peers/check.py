#!/usr/bin/env python3
"""What bench-peers.sh expects of each pipeline, computed here from the input itself (a third
implementation of the filters and the mask, so neither tool grades its own output), and the
checks of what each tool wrote.

    check.py expect INPUT               JSON: lines, kept by filter 1, kept by filter 2, and the
                                        digests of the input lines and of pipeline 2's output
    check.py digest-json FILE           JSON: lines and the order-independent digest of FILE's
                                        JSON lines, each normalized (keys sorted, numbers as
                                        floats), so key order and number spelling do not count
    check.py kafka-expect N             the records of N from `kafka-relay-baseline produce` that
                                        pipeline 4's filter keeps
    check.py kafka-count BROKERS TOPIC  JSON: records in TOPIC and distinct `seq` values among
                                        them (read with confluent-kafka from the beginning)
    check.py wait WHAT ... PID TIMEOUT  waits until the measured run is done, and prints the
                                        time it saw that (seconds since the epoch); exits 1 when
                                        the process (PID) ended first or TIMEOUT seconds passed:
        wait exit                           the process ended (Weir's pipelines that end by themselves)
        wait lines FILE N                   FILE holds N lines
        wait http URL N                     count_server.py at URL has received N records
        wait log FILE N                     Vector's blackhole logged `events=N` (see below)
        wait kafka BROKERS TOPIC N          TOPIC's high watermarks add up to N
    check.py vector-discard-end LOG N   when Vector's blackhole reached N events, from its
                                        once-a-second `events=` lines: the last second's rate
                                        carried from the tick before, so the estimate does not
                                        round the run up to the next tick

Filters (the same in the Weir and Vector configs beside this file):
  1: 100 <= amount < 5000 and country is not NL
  2 and 4: amount >= 100 and country is not NL; 2 then masks card.number but its last 4 digits.
"""

import datetime
import hashlib
import json
import os
import re
import sys
import time
import urllib.request
import zlib

MASK = 1 << 64


def line_digest(b):
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little")


def normalized(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse(line):
    # Numbers as floats on both sides: 12.50 and 12.5 are the same amount.
    return json.loads(line, parse_int=float)


def keep1(v):
    return 100 <= v["amount"] < 5000 and v["country"] != "NL"


def keep2(v):
    return v["amount"] >= 100 and v["country"] != "NL"


def mask(v):
    n = v["card"]["number"]
    v["card"]["number"] = "*" * (len(n) - 4) + n[-4:]
    return v


def expect(path):
    lines = kept1 = kept2 = 0
    crc = digest = 0
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if not line:
                continue
            lines += 1
            crc = (crc + zlib.crc32(line)) % MASK
            v = parse(line)
            kept1 += keep1(v)
            if keep2(v):
                kept2 += 1
                digest = (digest + line_digest(normalized(mask(v)))) % MASK
    print(json.dumps({"lines": lines, "kept1": kept1, "kept2": kept2, "crc": crc, "digest2": digest}))


def digest_json(path):
    lines = digest = 0
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if not line:
                continue
            lines += 1
            digest = (digest + line_digest(normalized(parse(line)))) % MASK
    print(json.dumps({"lines": lines, "digest": digest}))


def kafka_expect(n):
    # kafka-relay-baseline produce: seq i, amount i % 1000, country NL when i % 4 == 0, else US.
    print(sum(1 for i in range(n) if i % 1000 >= 100 and i % 4 != 0))


def kafka_count(brokers, topic):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-peers-check",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    meta = c.list_topics(topic, timeout=10)
    parts = sorted(meta.topics[topic].partitions)
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    records, seqs, done = 0, set(), {p for p in parts if ends[p] == 0}
    idle = 0
    while len(done) < len(parts) and idle < 100:
        msgs = c.consume(10000, timeout=0.1)
        idle = 0 if msgs else idle + 1
        for m in msgs:
            if m.error():
                continue
            records += 1
            seqs.add(json.loads(m.value())["seq"])
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
    c.close()
    print(json.dumps({"records": records, "distinct": len(seqs), "complete": len(done) == len(parts)}))


def alive(pid):
    # The measured command runs under /usr/bin/time, our child: once it is reaped, it is gone.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


class LineCounter:
    """Counts the lines of a growing file, reading only what was appended since the last look."""

    def __init__(self, path):
        self.path, self.offset, self.lines = path, 0, 0

    def __call__(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        self.offset += len(chunk)
        self.lines += chunk.count(b"\n")
        return self.lines


EVENTS = re.compile(rb"events=(\d+)")


def blackhole_counts(path):
    """(time, events) of each `Collected events` line of Vector's log."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            m = EVENTS.search(line)
            if m and b"Collected events" in line:
                stamp = line.split(b" ", 1)[0].decode()
                t = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                out.append((t, int(m.group(1))))
    return out


def wait(what, *args):
    *rest, pid, timeout = args
    pid, deadline = int(pid), time.time() + float(timeout)
    if what == "exit":
        done = lambda: False
    elif what == "lines":
        counter, n = LineCounter(rest[0]), int(rest[1])
        done = lambda: counter() >= n
    elif what == "http":
        url, n = rest[0], int(rest[1])
        done = lambda: json.load(urllib.request.urlopen(url, timeout=5))["records"] >= n
    elif what == "log":
        path, n = rest[0], int(rest[1])
        done = lambda: any(e >= n for _, e in blackhole_counts(path))
    elif what == "kafka":
        from confluent_kafka import Consumer, TopicPartition
        brokers, topic, n = rest[0], rest[1], int(rest[2])
        c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-peers-wait"})
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        done = lambda: sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                           for p in parts) >= n
    else:
        sys.exit(f"unknown wait {what}")
    while True:
        running = alive(pid)
        if done():
            print(f"{time.time():.3f}")
            return
        if not running:
            if what == "exit":
                print(f"{time.time():.3f}")
                return
            sys.exit(f"the measured process ended before the run was done ({what} {rest})")
        if time.time() > deadline:
            sys.exit(f"not done after {timeout} s ({what} {rest})")
        time.sleep(0.05)


def vector_discard_end(path, n):
    n = int(n)
    ticks = blackhole_counts(path)
    i = next((i for i, (_, e) in enumerate(ticks) if e >= n), None)
    if i is None:
        sys.exit(f"Vector never logged events={n} in {path}")
    t, _ = ticks[i]
    if i >= 2 and ticks[i - 1][1] > ticks[i - 2][1]:
        (t0, e0), (t1, e1) = ticks[i - 2], ticks[i - 1]
        t = min(t, t1 + (n - e1) * (t1 - t0) / (e1 - e0))
    print(f"{t:.3f}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"expect": expect, "digest-json": digest_json,
     "kafka-expect": lambda n: kafka_expect(int(n)), "kafka-count": kafka_count,
     "wait": wait, "vector-discard-end": vector_discard_end}[cmd](*args)

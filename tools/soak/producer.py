"""The soak's producer: JSON records with sequential ids at a steady rate, for a bounded time.

Each record is about `--size` bytes: `{"id", "status", "ts", "customer", "pad"}`. `status` is
`paid` for ids with `id % 4 < 2` (the http pipeline's filter passes those) and `pending` or
`refunded` otherwise. The key is the id, so the partition follows from it. Delivery reports
mark the ids the broker confirmed; at the end (after a bounded flush) the confirmed ids are
written as one byte per id to `--out`, and every second the counts go to `--stats` (JSON).

    python3 producer.py --bootstrap 127.0.0.1:19292 --topic soak-in --rate 500 --seconds 1800 \
        --out /tmp/work/produced.bin --stats /tmp/work/producer.json
"""
import argparse
import json
import os
import time

from confluent_kafka import KafkaException, Producer


def passes_filter(i):
    """Whether the http pipeline's filter (`status: [paid]`) keeps record `i`."""
    return i % 4 < 2


def status_of(i):
    return ("paid", "paid", "pending", "refunded")[i % 4]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--stop-file", help="stop producing early when this file appears")
    args = ap.parse_args()

    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": 5,
        # Long enough to ride out the broker's restarts: a record is reported failed only
        # after this, and a failed record is simply not expected downstream.
        "message.timeout.ms": 300000,
        "queue.buffering.max.messages": 1000000,
        "log_level": 3,
    })
    confirmed = bytearray(int(args.rate * args.seconds) + 1024)
    state = {"delivered": 0, "failed": 0, "last_error": None}

    def report(err, msg):
        i = int(msg.key())
        if err is None:
            confirmed[i] = 1
            state["delivered"] += 1
        else:
            state["failed"] += 1
            state["last_error"] = str(err)

    pad_base = "x" * args.size
    produced = 0
    start = time.monotonic()
    last_stats = 0.0

    def write_stats(done=False):
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"produced": produced, "delivered": state["delivered"],
                       "failed": state["failed"], "last_error": state["last_error"],
                       "in_queue": len(p), "done": done, "time": time.time()}, f)
        os.replace(tmp, args.stats)

    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= args.seconds or (args.stop_file and os.path.exists(args.stop_file)):
            break
        target = min(int(elapsed * args.rate), len(confirmed) - 1)
        while produced < target:
            i = produced
            head = {"id": i, "status": status_of(i), "ts": int(time.time() * 1000),
                    "customer": {"id": f"c{i % 1000}", "country": ("FR", "DE", "PT", "NL")[i % 4]}}
            s = json.dumps(head, separators=(",", ":"))
            pad = max(args.size - len(s) - 9, 0)
            head["pad"] = pad_base[:pad]
            try:
                p.produce(args.topic, key=str(i).encode(), value=json.dumps(head, separators=(",", ":")).encode(),
                          on_delivery=report)
            except BufferError:
                p.poll(0.1)
                continue
            produced += 1
        p.poll(0)
        if now - last_stats >= 1.0:
            write_stats()
            last_stats = now
        time.sleep(0.005)

    deadline = time.monotonic() + 330
    while len(p) > 0 and time.monotonic() < deadline:
        p.flush(1.0)
        write_stats()
    with open(args.out, "wb") as f:
        f.write(confirmed[:produced])
    write_stats(done=True)
    print(json.dumps({"produced": produced, "delivered": state["delivered"], "failed": state["failed"],
                      "unconfirmed": len(p), "last_error": state["last_error"]}))


if __name__ == "__main__":
    try:
        main()
    except KafkaException as e:
        raise SystemExit(f"producer: {e}")

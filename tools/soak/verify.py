"""The soak's end: wait until both pipelines have caught up, then count what arrived.

`drain` waits (bounded) until every partition of the input topic is committed to its end by
both consumer groups and the output topic's end stops moving. `check` reads back the input and
output topics, compares them with the ids the producer had confirmed and with the HTTPS
server's counts, puts every duplicate down to the fault going on when it was written (the most
recent fault started before it), works out each fault's lag peak and recovery from the samples,
writes `summary.json` and prints a summary. Its exit status is 1 if any record was lost.
"""
import argparse
import bisect
import csv
import json
import statistics
import sys
import time

from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, __import__("os").path.dirname(__file__))
from producer import passes_filter  # noqa: E402


def consumer(bootstrap, group="soak-verify"):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "log_level": 2, "reconnect.backoff.max.ms": 1000})


def ends(c, topic, partitions):
    return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)]


def drain(args):
    probe = consumer(args.bootstrap)
    groups = {g: consumer(args.bootstrap, g) for g in args.groups.split(",")}
    deadline = time.time() + args.timeout
    last_out, stable_since = None, time.time()
    lags = {}
    while time.time() < deadline:
        try:
            in_ends = ends(probe, args.input, args.partitions)
            lags = {}
            for g, c in groups.items():
                got = c.committed([TopicPartition(args.input, p) for p in range(args.partitions)], timeout=10)
                lags[g] = sum(max(e - max(tp.offset, 0), 0) for tp, e in zip(got, in_ends))
            out = sum(ends(probe, args.output, args.partitions))
        except Exception as e:
            print(f"drain: {e}", flush=True)
            time.sleep(2)
            continue
        if out != last_out:
            last_out, stable_since = out, time.time()
        if all(v == 0 for v in lags.values()) and time.time() - stable_since >= 5:
            print(f"drained: lag {lags}, output {out} records", flush=True)
            return 0
        print(f"draining: lag {lags}, output {out} records", flush=True)
        time.sleep(5)
    print(f"not drained within {args.timeout:.0f}s: lag {lags}", flush=True)
    return 1


def read_topic(bootstrap, topic, partitions, want_value, timeout):
    """Per-id counts (bytearray) and, for every copy past the first, its (partition, offset)."""
    c = consumer(bootstrap)
    stop = ends(c, topic, partitions)
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions) if stop[p] > 0])
    counts = bytearray()
    extra = []
    seen = [0] * partitions
    deadline = time.time() + timeout
    while any(seen[p] < stop[p] for p in range(partitions)) and time.time() < deadline:
        for m in c.consume(num_messages=5000, timeout=1.0):
            if m.error():
                continue
            p, o = m.partition(), m.offset()
            if o >= stop[p]:
                continue
            seen[p] = max(seen[p], o + 1)
            i = json.loads(m.value())["id"] if want_value else int(m.key())
            if i >= len(counts):
                counts.extend(bytes(max(i + 1 - len(counts), 1 << 16)))
            if counts[i]:
                extra.append((p, o, i))
            if counts[i] < 255:
                counts[i] += 1
    c.close()
    complete = all(seen[p] >= stop[p] for p in range(partitions))
    return counts, extra, sum(stop), complete


def load_faults(path):
    with open(path) as f:
        return [{"kind": r["kind"], "start": float(r["start"]), "end": float(r["end"]) if r["end"] else None}
                for r in csv.DictReader(f)]


def fault_at(faults, t):
    """Index of the most recent fault started at or before t, or None."""
    best = None
    for i, fl in enumerate(faults):
        if fl["start"] <= t:
            best = i
    return best


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def check(args):
    faults = load_faults(args.faults)
    rows = list(csv.DictReader(open(args.csv)))
    t0 = float(rows[0]["epoch"]) if rows else 0.0
    confirmed = open(args.produced, "rb").read()
    https = open(args.https_counts, "rb").read()
    https_dups = {int(k): v for k, v in json.load(open(args.https_dups)).items()}
    wms = [json.loads(line) for line in open(args.watermarks)]

    input_counts, input_extra, input_total, input_complete = read_topic(
        args.bootstrap, args.input, args.partitions, False, args.read_timeout)
    output_counts, output_extra, output_total, output_complete = read_topic(
        args.bootstrap, args.output, args.partitions, True, args.read_timeout)

    def count(b, i):
        return b[i] if i < len(b) else 0

    n = len(confirmed)
    ids_confirmed = [i for i in range(n) if confirmed[i]]
    expect_http = [i for i in ids_confirmed if passes_filter(i)]
    lost_http = [i for i in expect_http if count(https, i) == 0]
    lost_kafka = [i for i in ids_confirmed if count(output_counts, i) == 0]
    not_in_input = [i for i in ids_confirmed if count(input_counts, i) == 0]
    filtered_but_sent = sum(1 for i in range(len(https)) if https[i] and not passes_filter(i))
    unconfirmed_arrived = sum(1 for i in range(n) if not confirmed[i] and count(input_counts, i))

    # Duplicates: on the HTTPS side by arrival second; on the output topic by when the copy was
    # written (the first watermark sample whose end passed its offset), beyond the copies the
    # input itself holds (a producer retry is not the pipeline's duplicate).
    def written_at(p, o):
        for w in wms:
            if w["ends"][p] > o:
                return w["t"]
        return None

    per_fault = [{"http_duplicates": 0, "kafka_duplicates": 0} for _ in faults]
    before = {"http_duplicates": 0, "kafka_duplicates": 0}

    def put(t, key, k):
        i = None if t is None else fault_at(faults, t)
        (before if i is None else per_fault[i])[key] += k

    for sec, k in https_dups.items():
        put(sec, "http_duplicates", k)
    input_dup_budget = {}
    for _, _, i in input_extra:
        input_dup_budget[i] = input_dup_budget.get(i, 0) + 1
    kafka_dups = 0
    for p, o, i in output_extra:
        if input_dup_budget.get(i, 0) > 0:
            input_dup_budget[i] -= 1
            continue
        kafka_dups += 1
        put(written_at(p, o), "kafka_duplicates", 1)

    # Lag around each fault, from the samples: the peak between its start and the next fault,
    # and when it was back under the threshold after the fault ended.
    def series(col):
        return [(float(r["epoch"]), num(r[col])) for r in rows if num(r[col]) is not None]

    first_fault = faults[0]["start"] if faults else float("inf")
    report = []
    lag_cols = {"http": "http_lag_committed", "kafka": "kafka_lag_committed"}
    thresholds = {}
    for name, col in lag_cols.items():
        base = [v for t, v in series(col) if t0 + 30 <= t < first_fault]
        p95 = sorted(base)[int(0.95 * (len(base) - 1))] if base else 0
        thresholds[name] = max(2 * p95, args.rate)
    for i, fl in enumerate(faults):
        nxt = faults[i + 1]["start"] if i + 1 < len(faults) else float("inf")
        item = {"kind": fl["kind"], "start_min": round((fl["start"] - t0) / 60, 2),
                "duration_s": round(fl["end"] - fl["start"], 1) if fl["end"] else None, **per_fault[i]}
        for name, col in lag_cols.items():
            s = [(t, v) for t, v in series(col) if fl["start"] <= t < nxt]
            item[f"{name}_lag_peak"] = int(max((v for _, v in s), default=0))
            rec = next((t for t, v in s if fl["end"] and t >= fl["end"] and v <= thresholds[name]), None)
            item[f"{name}_recovered_s_after_end"] = None if rec is None else round(rec - fl["end"], 1)
        report.append(item)

    rss = [num(r["rss_mib"]) for r in rows if num(r["rss_mib"]) is not None]
    cpu = [num(r["cpu_pct"]) for r in rows if num(r["cpu_pct"]) is not None]
    steady = [num(r["rss_mib"]) for r in rows if num(r["rss_mib"]) is not None and float(r["epoch"]) < first_fault]
    summary = {
        "produced": n, "confirmed": len(ids_confirmed), "unconfirmed_in_input": unconfirmed_arrived,
        "input_records": input_total, "input_read_complete": input_complete,
        "input_duplicates": len(input_extra), "missing_from_input": len(not_in_input),
        "expected_https": len(expect_http), "https_unique": sum(1 for b in https if b),
        "lost_https": len(lost_http), "lost_https_first": lost_http[:20],
        "filtered_but_sent": filtered_but_sent,
        "output_records": output_total, "output_read_complete": output_complete,
        "lost_kafka": len(lost_kafka), "lost_kafka_first": lost_kafka[:20],
        "https_duplicates": sum(https_dups.values()), "kafka_duplicates": kafka_dups,
        "duplicates_before_any_fault": before,
        "rss_mib": {"first": rss[0] if rss else None, "peak": max(rss, default=None),
                    "final": rss[-1] if rss else None,
                    "peak_before_faults": max(steady, default=None)},
        "cpu_pct": {"mean": round(statistics.mean(cpu), 1) if cpu else None, "peak": max(cpu, default=None)},
        "recovery_thresholds": thresholds,
        "faults": report,
    }
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    lost = len(lost_http) + len(lost_kafka)
    if lost or not (input_complete and output_complete):
        print(f"LOST: {len(lost_http)} records never reached the HTTPS server, {len(lost_kafka)} never "
              f"reached the output topic (first: {lost_http[:5]} {lost_kafka[:5]})", flush=True)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("drain", "check"):
        s = sub.add_parser(name)
        s.add_argument("--bootstrap", required=True)
        s.add_argument("--input", required=True)
        s.add_argument("--output", required=True)
        s.add_argument("--partitions", type=int, required=True)
    d = sub.choices["drain"]
    d.add_argument("--groups", required=True)
    d.add_argument("--timeout", type=float, default=300)
    c = sub.choices["check"]
    for a in ("--csv", "--faults", "--produced", "--https-counts", "--https-dups", "--watermarks", "--summary"):
        c.add_argument(a, required=True)
    c.add_argument("--rate", type=float, required=True)
    c.add_argument("--read-timeout", type=float, default=600)
    args = ap.parse_args()
    sys.exit(drain(args) if args.cmd == "drain" else check(args))


if __name__ == "__main__":
    main()

"""The soak's sampler: one CSV row every `--interval` seconds until the stop file appears.

Columns: seconds since the start, the Unix time, UTC time, the fault in progress (the content of the fault
file), weir's pid, RSS (MiB, VmRSS), CPU (% of one core, from /proc/<pid>/stat deltas), the
host's busy CPU (% of all cores, /proc/stat), records produced (and per second), per pipeline
the sink's `weir_component_sent_events_total` per second and the lag gauge
`weir_kafka_consumer_lag_messages` summed over partitions (what weir reports, from librdkafka's
statistics), per pipeline the lag by the broker's committed offsets (log end minus committed,
measured from outside, also while weir is down), the records the HTTPS server counted (unique
ids, and per second), and the output topic's records (and per second). Blank means unknown at
that moment (weir down, broker down). The output topic's end offsets per partition also go to
`--watermarks` (JSON lines), so that an output record's offset dates when it was written.
"""
import argparse
import csv
import json
import os
import re
import socket
import ssl
import time
import urllib.request
from datetime import datetime, timezone

from confluent_kafka import Consumer, TopicPartition

CLK_TCK = os.sysconf("SC_CLK_TCK")
METRIC = re.compile(r'^(\w+)\{([^}]*)\}\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

COLUMNS = ["t_s", "epoch", "time_utc", "fault", "weir_pid", "rss_mib", "cpu_pct", "host_cpu_pct",
           "produced", "produced_per_s",
           "http_sent_per_s", "kafka_sent_per_s", "http_lag", "kafka_lag",
           "http_lag_committed", "kafka_lag_committed",
           "https_unique", "https_per_s", "output_records", "output_per_s"]


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_mib(pid):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def host_ticks():
    parts = [int(x) for x in read("/proc/stat").splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts[:8]), idle


def scrape(api):
    """{(metric, pipeline, component_kind): summed value} from /metrics, or None."""
    try:
        with urllib.request.urlopen(f"http://{api}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        m = METRIC.match(line)
        if not m:
            continue
        name = m.group(1)
        if name not in ("weir_component_sent_events_total", "weir_kafka_consumer_lag_messages"):
            continue
        labels = dict(LABEL.findall(m.group(2)))
        key = (name, labels.get("pipeline"), labels.get("component_kind"))
        out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


def port_open(hostport):
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--watermarks", required=True)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--fault-file", required=True)
    ap.add_argument("--producer-stats", required=True)
    ap.add_argument("--api", required=True)
    ap.add_argument("--https", required=True, help="host:port of the HTTPS server")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--pipelines", required=True, help="http_pipeline:group,kafka_pipeline:group")
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--max-seconds", type=float, required=True)
    args = ap.parse_args()

    pipes = [p.split(":") for p in args.pipelines.split(",")]  # [(name, group)] http first
    common = {"bootstrap.servers": args.bootstrap, "enable.auto.commit": False,
              "reconnect.backoff.max.ms": 1000, "log_level": 2, "socket.timeout.ms": 3000}
    groups = {name: Consumer({**common, "group.id": group}) for name, group in pipes}
    probe = Consumer({**common, "group.id": "soak-sampler"})
    tls = ssl.create_default_context(cafile=args.ca)
    tls.check_hostname = False

    def ends(topic):
        out = []
        for p in range(args.partitions):
            _, high = probe.get_watermark_offsets(TopicPartition(topic, p), timeout=2, cached=False)
            out.append(high)
        return out

    def committed_lag(name, input_ends):
        tps = [TopicPartition(args.input, p) for p in range(args.partitions)]
        got = groups[name].committed(tps, timeout=2)
        return sum(max(e - (tp.offset if tp.offset >= 0 else 0), 0) for tp, e in zip(got, input_ends))

    start = time.time()
    prev = {}
    f = open(args.csv, "w", newline="")
    w = csv.writer(f)
    w.writerow(COLUMNS)
    wm = open(args.watermarks, "w")
    n = 0
    while not os.path.exists(args.stop_file) and time.time() - start < args.max_seconds:
        now = time.time()
        row = dict.fromkeys(COLUMNS, "")
        row["t_s"] = round(now - start, 1)
        row["epoch"] = round(now, 3)
        row["time_utc"] = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        row["fault"] = read(args.fault_file)
        pid = read(args.pid_file)
        row["weir_pid"] = pid
        if pid:
            rss = proc_rss_mib(pid)
            ticks = proc_cpu_ticks(pid)
            row["rss_mib"] = "" if rss is None else round(rss, 1)
            p_pid, p_ticks, p_t = prev.get("cpu", (None, None, None))
            if ticks is not None and p_pid == pid and p_ticks is not None:
                row["cpu_pct"] = round(100.0 * (ticks - p_ticks) / CLK_TCK / (now - p_t), 1)
            prev["cpu"] = (pid, ticks, now)
        total, idle = host_ticks()
        if "host" in prev:
            pt, pi = prev["host"]
            if total > pt:
                row["host_cpu_pct"] = round(100.0 * os.cpu_count() * (1 - (idle - pi) / (total - pt)), 1)
        prev["host"] = (total, idle)

        def rate(key, value):
            """Per second since the previous sample; blank after a restart (counter went down)."""
            old = prev.get(key)
            prev[key] = (value, now)
            if value is None or old is None or old[0] is None or value < old[0]:
                return ""
            return round((value - old[0]) / (now - old[1]), 1)

        try:
            ps = json.loads(read(args.producer_stats) or "{}")
        except ValueError:
            ps = {}
        produced = ps.get("produced")
        row["produced"] = "" if produced is None else produced
        row["produced_per_s"] = rate("produced", produced)

        m = scrape(args.api)
        for (name, _), col in zip(pipes, ("http", "kafka")):
            sent = None if m is None else m.get(("weir_component_sent_events_total", name, "sink"))
            row[f"{col}_sent_per_s"] = rate(f"sent-{name}", sent)
            lag = None if m is None else m.get(("weir_kafka_consumer_lag_messages", name, None))
            row[f"{col}_lag"] = "" if lag is None else int(lag)

        try:
            req = urllib.request.Request(f"https://{args.https}/stats")
            with urllib.request.urlopen(req, timeout=2, context=tls) as r:
                hs = json.loads(r.read())
            row["https_unique"] = hs["unique"]
            row["https_per_s"] = rate("https", hs["received"])
        except (OSError, ValueError, KeyError):
            pass

        if port_open(args.bootstrap):
            try:
                in_ends = ends(args.input)
                out_ends = ends(args.output)
                for (name, _), col in zip(pipes, ("http", "kafka")):
                    row[f"{col}_lag_committed"] = committed_lag(name, in_ends)
                row["output_records"] = sum(out_ends)
                row["output_per_s"] = rate("output", sum(out_ends))
                wm.write(json.dumps({"t": round(now, 3), "ends": out_ends}) + "\n")
                wm.flush()
            except Exception as e:  # a broker going away mid-sample: this row stays blank
                print(f"sampler: kafka: {e}", flush=True)
        w.writerow([row[c] for c in COLUMNS])
        f.flush()
        n += 1
        # Keep to the grid: the next sample is at start + n * interval.
        delay = start + n * args.interval - time.time()
        while delay < 0:
            n += 1
            delay = start + n * args.interval - time.time()
        time.sleep(delay)
    f.close()
    wm.close()


if __name__ == "__main__":
    main()

"""Draws the soak's samples: RSS, CPU, throughput and lag in stacked panels over time, with the
fault windows shaded and labelled. Needs matplotlib (`python3 -m pip install matplotlib`).

    python3 plot.py --csv samples.csv --faults faults.csv --out docs/img/soak.png --title "..."
"""
import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"broker-freeze": "#d62728", "broker-restart": "#d62728", "https-503": "#ff7f0e", "kill-9": "#9467bd"}
LABELS = {"broker-freeze": "broker frozen", "broker-restart": "broker restart", "https-503": "HTTPS 503", "kill-9": "kill -9"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--faults", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="Weir soak")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(args.csv)))
    faults = list(csv.DictReader(open(args.faults)))
    t0 = float(rows[0]["epoch"])

    def col(name):
        """Minutes and values; a blank sample (weir or the broker down) is a gap in the line."""
        xs = [(float(r["epoch"]) - t0) / 60 for r in rows]
        ys = [float(r[name]) if r[name] != "" else float("nan") for r in rows]
        return xs, ys

    fig, axes = plt.subplots(4, 1, figsize=(12, 11), sharex=True)
    ax = axes[0]
    ax.plot(*col("rss_mib"), color="#1f77b4", lw=1.2, label="weir RSS")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax = axes[1]
    ax.plot(*col("cpu_pct"), color="#1f77b4", lw=1.0, label="weir (% of one core)")
    ax.plot(*col("host_cpu_pct"), color="#7f7f7f", lw=0.8, ls="--", label="whole host (200 = both cores busy)")
    ax.set_ylabel("CPU (%)")
    ax.set_ylim(bottom=0)
    ax = axes[2]
    ax.plot(*col("produced_per_s"), color="#7f7f7f", lw=0.8, label="produced")
    ax.plot(*col("kafka_sent_per_s"), color="#2ca02c", lw=1.0, label="kafka → kafka (sink sent)")
    ax.plot(*col("http_sent_per_s"), color="#1f77b4", lw=1.0, label="kafka → filter → https (sink sent)")
    ax.set_ylabel("records/s")
    ax.set_ylim(bottom=0)
    ax = axes[3]
    ax.plot(*col("kafka_lag_committed"), color="#2ca02c", lw=1.2, label="kafka → kafka, committed")
    ax.plot(*col("http_lag_committed"), color="#1f77b4", lw=1.2, label="kafka → https, committed")
    ax.plot(*col("kafka_lag"), color="#2ca02c", lw=0.7, ls=":", label="kafka → kafka, weir gauge")
    ax.plot(*col("http_lag"), color="#1f77b4", lw=0.7, ls=":", label="kafka → https, weir gauge")
    ax.set_ylabel("lag (records)")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("minutes")

    for f in faults:
        s = (float(f["start"]) - t0) / 60
        e = (float(f["end"]) - t0) / 60 if f["end"] else s
        e = max(e, s + 0.05)
        c = COLOURS.get(f["kind"], "#bcbd22")
        for a in axes:
            a.axvspan(s, e, color=c, alpha=0.25, lw=0)
        axes[0].annotate(LABELS.get(f["kind"], f["kind"]), xy=(s, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(2, -10), textcoords="offset points", fontsize=8, color=c, va="top")
    for a in axes:
        a.grid(True, alpha=0.3)
        a.legend(loc="upper right", fontsize=8, framealpha=0.8)
    axes[0].set_title(args.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()

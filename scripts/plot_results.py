"""Charts of a pipebench results CSV (schema pipebench-csv/3, or /2, /1). See scripts/plot."""
import csv
import math
import os
import statistics
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

SCHEMA = "pipebench-csv/6"
# Older versions lack later columns (read with .get, empty when absent): version 5 the
# replay columns, version 4 also the contend and jobserver columns, version 2 the probes,
# version 1 also the pairs, fanin and kernel pipe size columns.
SCHEMAS = tuple(f"pipebench-csv/{v}" for v in range(6, 0, -1))


def fail(msg):
    print(f"plot: error: {msg}", file=sys.stderr)
    sys.exit(65)


def size_label(n):
    n = int(n)
    for shift, unit in ((30, "G"), (20, "M"), (10, "K")):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def load(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        fail(f"{path} has no rows")
    if rows[0].get("schema") not in SCHEMAS:
        fail(f"{path} is not a {SCHEMA} file (schema: {rows[0].get('schema')!r})")
    return rows


def num(row, col):
    v = row.get(col, "")
    return float(v) if v not in ("", None) else None


def groups(rows, key):
    out = OrderedDict()
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def med(rows, col):
    xs = [x for x in (num(r, col) for r in rows) if x is not None]
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def footer(fig, rows):
    r = rows[0]
    commit = r.get("env_git_commit", "")[:10]
    text = (f"{r.get('env_cpu_model', '')}, {r.get('env_online_cpus', '')} CPUs, Linux {r.get('env_kernel', '')}, "
            f"{r.get('env_build', '')} build, commit {commit}; {r.get('repetitions', '')} repetitions, "
            "median with min-max")
    fig.text(0.01, 0.005, text, fontsize=7, color="gray")


# Parameter columns (those that identify a configuration), as every schema version orders them.
FIRST_PARAMETER, LAST_PARAMETER = "workload", "memory_node"
# Columns a chart's x axis or its own derivation covers (read size defaults to the write size,
# total to 2048 writes, so both follow the write size).
DERIVED = {"workload", "transport"}


def parameter_columns(rows):
    cols = list(rows[0].keys())
    if FIRST_PARAMETER in cols and LAST_PARAMETER in cols:
        return cols[cols.index(FIRST_PARAMETER):cols.index(LAST_PARAMETER) + 1]
    return []


def format_value(col, v):
    if col.endswith("_B") and v.isdigit():
        return size_label(v)
    return v


def varying_columns(rows, xcol):
    """Parameter columns that take more than one value among rows of one transport and one x
    (so the x axis itself and what follows from it, like an automatic total, do not count)."""
    out = []
    cells = groups(rows, lambda r: (r["transport"], r.get(xcol, "")))
    for col in parameter_columns(rows):
        if col in DERIVED or col == xcol:
            continue
        if any(len({r.get(col, "") for r in g}) > 1 for g in cells.values()):
            out.append(col)
    return out


def config_label(r, cols):
    """`engine wait_spin_ns=0`: the transport, then every column in cols that applies to it."""
    parts = [r["transport"]]
    for c in cols:
        v = r.get(c, "")
        if v != "":
            parts.append(f"{c}={format_value(c, v)}")
    return " ".join(parts)


def config_series(rows, xcol, ycol, always=()):
    """One series per configuration (transport + varying parameters + `always`), points
    (x, (median, min, max)) of ycol over repetitions."""
    cols = list(always) + [c for c in varying_columns(rows, xcol) if c not in always]
    series = OrderedDict()
    for (name, x), g in groups(rows, lambda r: (config_label(r, cols), int(r[xcol]))).items():
        m = med(g, ycol)
        if m is not None:
            series.setdefault(name, []).append((x, m))
    return series


def plot_lines(ax, series, ylabel, logy=False, sizes=True):
    for name, pts in series.items():
        pts.sort()
        xs = [p[0] for p in pts]
        ys = [p[1][0] for p in pts]
        lo = [p[1][0] - p[1][1] for p in pts]
        hi = [p[1][2] - p[1][0] for p in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=name)
    xticks = sorted({p[0] for pts in series.values() for p in pts})
    if sizes or (xticks and xticks[0] > 0 and xticks[-1] >= 4 * xticks[0]):
        ax.set_xscale("log", base=2)
    ax.set_xticks(xticks)
    ax.set_xticklabels([size_label(x) if sizes else str(x) for x in xticks], rotation=45 if sizes else 0)
    ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
        # Plain numbers (2, 5, 10, 20), not 2x10^0; over a wide range only 2 and 5 between
        # the powers of ten, so that the labels do not crowd.
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
        lo, hi = ax.get_ylim()
        wide = hi >= 30 * lo

        def minor(y, _):
            mantissa = round(y / 10 ** math.floor(math.log10(y) + 1e-9), 6)
            return f"{y:g}" if not wide or mantissa in (2, 5) else ""
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(minor))
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def stream_charts(rows, out, stem):
    made = []
    stream = [r for r in rows if r["workload"] == "stream"]
    if not stream:
        return made
    sizes = {r["write_size_B"] for r in stream}
    if len(sizes) > 1:
        # Throughput vs write size: one line per configuration, that is per transport and per
        # value of every parameter that varies at a fixed transport and write size (a sweep
        # over --wait or --hold gives one engine line per value, not one pooled line).
        series = config_series(stream, "write_size_B", "throughput_GBps")
        fig, ax = plt.subplots(figsize=(9, 5.5))
        plot_lines(ax, series, "throughput, GB/s (10^9 B/s)", logy=True)
        ax.set_xlabel("write size (bytes)")
        ax.set_title("Stream throughput vs write size, per configuration")
        footer(fig, rows)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        made.append(save(fig, out, stem, "throughput-vs-write-size"))
        engine = [r for r in stream if r["transport"] == "engine"]
        mindirects = {r["pipe_mindirect_B"] for r in engine}
        if len(mindirects) > 1:
            engine.sort(key=lambda r: int(r["pipe_mindirect_B"]))
            series = config_series(engine, "write_size_B", "throughput_GBps", always=("pipe_mindirect_B",))
            fig, ax = plt.subplots(figsize=(9, 5.5))
            plot_lines(ax, series, "throughput, GB/s (10^9 B/s)")
            for md in sorted(mindirects, key=int):
                ax.axvline(int(md), color="gray", linestyle=":", alpha=0.5)
            ax.set_xlabel("write size (bytes); dotted: the pipe_mindirect values")
            ax.set_title("Engine throughput vs write size, per pipe_mindirect")
            footer(fig, rows)
            fig.tight_layout(rect=(0, 0.03, 1, 1))
            made.append(save(fig, out, stem, "engine-throughput-per-mindirect"))
    if len(sizes) > 1:
        return made
    # Per configuration bars (the default suite has one write size).
    g = groups(stream, lambda r: r["label"])
    labels = list(g.keys())
    stats = [med(v, "throughput_GBps") for v in g.values()]
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(labels)), 5))
    bars = ax.bar(range(len(labels)), [s[0] for s in stats],
                  yerr=[[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]], capsize=4,
                  color=[{"engine": "tab:blue", "linux-pipe": "tab:orange", "memcpy": "tab:gray"}.get(v[0]["transport"], "tab:green") for v in g.values()])
    for b, s in zip(bars, stats):
        ax.annotate(f"{s[0]:.2f}", (b.get_x() + b.get_width() / 2, s[0]), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([f"{k}\n({size_label(v[0]['write_size_B'])} writes)" for k, v in g.items()], fontsize=8, rotation=30 if len(labels) > 6 else 0)
    ax.set_yscale("log")
    ax.set_ylabel("throughput, GB/s (log scale)")
    ax.set_title("Stream throughput per configuration")
    ax.grid(True, axis="y", alpha=0.3)
    footer(fig, rows)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    made.append(save(fig, out, stem, "throughput-per-configuration"))
    return made


def concurrent_chart(rows, out, stem, workload, xcol, always, xlabel, title, name):
    """Aggregate throughput against the number of streams (pairs, writers), one line per
    configuration."""
    these = [r for r in rows if r["workload"] == workload and r.get(xcol, "") != ""]
    if not these:
        return []
    series = config_series(these, xcol, "throughput_GBps", always=always)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    plot_lines(ax, series, "aggregate throughput, GB/s (10^9 B/s)", logy=True, sizes=False)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    footer(fig, rows)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return [save(fig, out, stem, name)]


def pairs_chart(rows, out, stem):
    return concurrent_chart(rows, out, stem, "pairs", "pairs", (), "pairs (writer/reader pairs at once)",
                            "Pairs: aggregate throughput per transport and number of pairs", "pairs-throughput")


def fanin_chart(rows, out, stem):
    return concurrent_chart(rows, out, stem, "fanin", "writers", ("mux",), "writers (one pipe each, one reader)",
                            "Fan-in: aggregate throughput per transport, mux and number of writers", "fanin-throughput")


def contend_chart(rows, out, stem):
    return concurrent_chart(rows, out, stem, "contend", "writers", ("readers", "write_size_B", "socket"),
                            "writer threads on one pipe",
                            "Contend: aggregate throughput per transport, readers and record size", "contend-throughput")


def jobserver_chart(rows, out, stem):
    """Token hand-offs per second per configuration, and the fairness beside it."""
    js = [r for r in rows if r["workload"] == "jobserver"]
    if not js:
        return []
    g = groups(js, lambda r: r["label"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(10, 2.6 * len(g)), 5.5))
    for ax, col, scale, ylabel in ((ax1, "handoffs_per_s", 1000, "thousand token hand-offs per second"),
                                   (ax2, "fairness_max_min", 1, "most tokens one worker took / fewest")):
        stats = [med(v, col) or (0, 0, 0) for v in g.values()]
        ax.bar(range(len(g)), [s[0] / scale for s in stats],
               yerr=[[(s[0] - s[1]) / scale for s in stats], [(s[2] - s[0]) / scale for s in stats]], capsize=3)
        ax.set_xticks(range(len(g)))
        ax.set_xticklabels([f"{k}\nwork {int(v[0]['work_ns']) / 1000:g} µs" for k, v in g.items()], fontsize=7)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
    ax1.set_title("Jobserver: token hand-offs (higher is better)")
    ax2.set_title("Fairness (1 is even)")
    footer(fig, rows)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return [save(fig, out, stem, "jobserver")]


def replay_chart(rows, out, stem):
    """Replayed traces: throughput per configuration, and the replay's wall time against the
    recording's own time on its pipes (with recorded timing: how much of it the pipe decides)."""
    rp = [r for r in rows if r["workload"] == "replay"]
    if not rp:
        return []
    g = groups(rp, lambda r: r["label"])
    traces = sorted({os.path.basename(r["trace"]) for r in rp})
    names = [k.replace("replay ", "").replace(f"trace={v[0]['trace']}", "").strip().replace(" ", "\n")
             + ("" if len(traces) == 1 else f"\n{os.path.basename(v[0]['trace'])}") for k, v in g.items()]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(11, 2.4 * len(g)), 5.5))
    for ax, col, scale, ylabel in ((ax1, "throughput_GBps", 1, "GB/s (log scale)"),
                                   (ax2, "wall_ns", 1e6, "replay wall time, ms (log scale)")):
        stats = [med(v, col) or (0, 0, 0) for v in g.values()]
        ax.bar(range(len(g)), [s[0] / scale for s in stats],
               yerr=[[(s[0] - s[1]) / scale for s in stats], [(s[2] - s[0]) / scale for s in stats]], capsize=3)
        ax.set_xticks(range(len(g)))
        ax.set_xticklabels(names, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
    spans = [med(v, "recorded_span_ns") for v in g.values()]
    ax2.scatter(range(len(g)), [s[0] / 1e6 for s in spans], marker="_", s=400, color="red",
                label="the recording's time on its pipes (strace included)")
    ax2.legend(fontsize=8)
    ax1.set_title(f"Replay of {', '.join(traces)}: throughput (higher is better)")
    ax2.set_title("Replay wall time against the recording")
    footer(fig, rows)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return [save(fig, out, stem, "replay")]


def latency_chart(rows, out, stem):
    pp = [r for r in rows if r["workload"] == "pingpong"]
    if not pp:
        return []
    g = groups(pp, lambda r: r["label"])
    pcts = [("p50_ns", "p50"), ("p90_ns", "p90"), ("p99_ns", "p99"), ("p999_ns", "p99.9"), ("p9999_ns", "p99.99")]
    fig, ax = plt.subplots(figsize=(max(8, 2.2 * len(g)), 5.5))
    width = 0.8 / len(pcts)
    for i, (col, name) in enumerate(pcts):
        stats = [med(v, col) for v in g.values()]
        xs = [k + (i - (len(pcts) - 1) / 2) * width for k in range(len(g))]
        ax.bar(xs, [s[0] / 1000 for s in stats], width,
               yerr=[[(s[0] - s[1]) / 1000 for s in stats], [(s[2] - s[0]) / 1000 for s in stats]], capsize=2, label=name)
    ax.set_xticks(range(len(g)))
    ax.set_xticklabels([f"{k}\n({v[0]['message_size_B']} B)" for k, v in g.items()], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("round trip, µs (log scale)")
    ax.set_title("Pingpong round-trip latency percentiles (median over repetitions, min-max)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    footer(fig, rows)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return [save(fig, out, stem, "latency-percentiles")]


def kva_chart(rows, out, stem):
    kva = [r for r in rows if r["workload"] == "kva-pressure"]
    if not kva:
        return []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 5))
    series = OrderedDict()
    sizes = OrderedDict()
    for (w, tier), g in groups(kva, lambda r: (int(r["write_size_B"]), int(r["kva_tier_pct"]))).items():
        series.setdefault(f"{size_label(w)} writes", []).append((tier, med(g, "throughput_GBps")))
        sizes.setdefault(f"{size_label(w)} writes", []).append((tier, med(g, "kva_buffer_size_end_B")))
    for name, pts in series.items():
        pts.sort()
        ax1.errorbar([p[0] for p in pts], [p[1][0] for p in pts],
                     yerr=[[p[1][0] - p[1][1] for p in pts], [p[1][2] - p[1][0] for p in pts]], marker="o", capsize=3, label=name)
    for name, pts in sizes.items():
        pts = sorted(p for p in pts if p[1] is not None)
        ax2.plot([p[0] for p in pts], [p[1][0] / 1024 for p in pts], marker="s", label=name)
    for ax in (ax1, ax2):
        for x in (50, 75):
            ax.axvline(x, color="gray", linestyle=":", alpha=0.6)
        ax.set_xlabel("KVA tier: pipekva filled above this % of maxpipekva (100 = exhausted)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylabel("throughput, GB/s (0 = no pipe could be made)")
    ax1.set_title("Engine stream throughput under KVA pressure")
    ax2.set_ylabel("workload pipe buffer at the end, KiB")
    ax2.set_title("Buffer size the KVA policy left")
    footer(fig, rows)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return [save(fig, out, stem, "kva-tiers")]


def save(fig, out, stem, name):
    path = os.path.join(out, f"{stem}-{name}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    if len(sys.argv) < 2:
        fail("usage: scripts/plot RESULTS.csv [OUTPUT_DIR]")
    path = sys.argv[1]
    if not os.path.exists(path):
        fail(f"cannot read {path}")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(path))
    os.makedirs(out, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    rows = load(path)
    made = (stream_charts(rows, out, stem) + pairs_chart(rows, out, stem) + fanin_chart(rows, out, stem)
            + contend_chart(rows, out, stem) + jobserver_chart(rows, out, stem) + replay_chart(rows, out, stem)
            + latency_chart(rows, out, stem) + kva_chart(rows, out, stem))
    for m in made:
        print(m)
    if not made:
        print("plot: nothing to chart in this file", file=sys.stderr)


if __name__ == "__main__":
    main()

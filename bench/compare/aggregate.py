#!/usr/bin/env python3
"""bench/compare/aggregate.py — turns one raw comparison run into the table.

Input: a raw file written by bench/compare/run.sh, bench/results/raw/<stamp>.jsonl.
Its first line is {"meta": {...}} (machine, date, command, rounds); every other
line is one benchmark row as a bench binary printed it with --json, tagged with
"side" ("blitzio" or "tokio"), "round" (1..N) and "bin" (the binary's name).

Per row and side it takes the median across rounds of ns_per_op (with the
min and max across rounds: the spread), of bytes_per_op and of allocs_per_op.
ratio = Tokio ns/op / blitzio ns/op, so > 1 means blitzio is faster.

Outputs, all under --out-dir (default bench/results):
  latest.json   meta + one object per row
  latest.md     the markdown table for BENCHMARKS.md
  ratios.dat    the rows both sides have, for chart.gp (index, row, ratio, colour)
and the aligned table on stdout.

    aggregate.py RAW.jsonl [--out-dir DIR]
    aggregate.py --meta --rounds N --command CMD     # prints the meta line for run.sh
"""
import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time

SIDES = ("blitzio", "tokio")

# Display order: the row list (sync, channels, contended, runtime),
# then the blitzio-only fiber rows. Rows not named here follow in the order
# they first appear in the raw file, so a new row shows up without an edit.
ORDER = [
    "mutex", "rwlock_read", "rwlock_write", "semaphore",
    "oncecell_get", "oncecell_set", "notify", "barrier",
    "chan_send", "chan_recv", "chan_roundtrip", "oneshot", "broadcast", "watch", "mpmc",
    "contended_mutex", "contended_rwlock", "contended_semaphore",
    "spawn_join", "spawn_join_fiber", "yield", "sleep_register_cancel", "idle_task_memory",
    "fiber_switch",
]

DASH = "\u2014"  # shown where a side has no such row


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor"):
                    return val.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tokio_version(repo):
    try:
        with open(os.path.join(repo, "bench/tokio/Cargo.lock")) as f:
            m = re.search(r'name = "tokio"\nversion = "([^"]+)"', f.read())
            return m.group(1) if m else ""
    except OSError:
        return ""


def make_meta(rounds, command, repo):
    commit = sh(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    if commit and sh(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"]):
        commit += "-dirty"
    return {
        "nproc": sh(["nproc"]) or str(os.cpu_count()),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command,
        "rounds": rounds,
        "commit": commit,
        "tokio": tokio_version(repo),
        # other work on the machine shows up as spread; the load at the start says how much
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def load(path):
    meta, rows = {}, []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                print(f"aggregate: {path}:{n}: not JSON, skipped: {line[:60]}", file=sys.stderr)
                continue
            if "meta" in obj:
                meta = obj["meta"]
            elif obj.get("side") in SIDES and "row" in obj and "ns_per_op" in obj:
                rows.append(obj)
            else:
                print(f"aggregate: {path}:{n}: not a row, skipped", file=sys.stderr)
    return meta, rows


def summarize(rows):
    """{row: {side: {...}}} plus the display order of the row names."""
    by = {}
    seen = []
    for r in rows:
        name = r["row"]
        if name not in seen:
            seen.append(name)
        by.setdefault(name, {}).setdefault(r["side"], []).append(r)
    order = [n for n in ORDER if n in by] + [n for n in seen if n not in ORDER]
    out = {}
    for name in order:
        out[name] = {}
        for side, rs in by[name].items():
            ns = [float(r["ns_per_op"]) for r in rs]
            med = statistics.median(ns)

            def med_of(key):
                vals = [float(r[key]) for r in rs if r.get(key) is not None]
                return statistics.median(vals) if vals else None

            out[name][side] = {
                "ns_per_op": med,
                "ns_min": min(ns),
                "ns_max": max(ns),
                "spread": (max(ns) - min(ns)) / med if med > 0 else 0.0,
                "bytes_per_op": med_of("bytes_per_op"),
                "allocs_per_op": med_of("allocs_per_op"),
                "ops": rs[-1].get("ops"),
                "runs_per_round": rs[-1].get("runs"),
                "rounds": len(rs),
                "bin": rs[-1].get("bin"),
            }
    return order, out


# Rows whose figure is memory, not time: their ratio is Tokio B/op / blitzio B/op
# (the ns/op of idle_task_memory only times spawning the idle tasks).
MEMORY_ROWS = {"idle_task_memory"}


def ratio_of(name, sides):
    b, t = sides.get("blitzio"), sides.get("tokio")
    if not (b and t):
        return None
    key = "bytes_per_op" if name in MEMORY_ROWS else "ns_per_op"
    if b.get(key) is None or t.get(key) is None:
        return None
    if b[key] > 0:
        return t[key] / b[key]
    return None


def fmt_ns(v):
    if v is None:
        return DASH
    if v < 10:
        return f"{v:.2f}"
    if v < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_bytes(v):
    if v is None:
        return DASH
    if v == 0:
        return "0"
    if v < 10:
        return f"{v:.2f}"
    return f"{v:.1f}"


def fmt_spread(sides):
    parts = []
    for side in SIDES:
        s = sides.get(side)
        parts.append(f"{s['spread'] * 100:.0f}%" if s and s["rounds"] > 1 else DASH)
    return " / ".join(parts)


HEADER = ["row", "blitzio ns/op", "Tokio ns/op", "ratio", "blitzio B/op", "Tokio B/op",
          "spread blz / tok"]


def table_cells(order, out):
    cells = []
    for name in order:
        s = out[name]
        b, t = s.get("blitzio"), s.get("tokio")
        r = ratio_of(name, s)
        mark = " (B)" if name in MEMORY_ROWS else ""
        cells.append([
            name + mark,
            fmt_ns(b["ns_per_op"] if b else None),
            fmt_ns(t["ns_per_op"] if t else None),
            f"{r:.2f}x" if r is not None else DASH,
            fmt_bytes(b["bytes_per_op"] if b else None),
            fmt_bytes(t["bytes_per_op"] if t else None),
            fmt_spread(s),
        ])
    return cells


def summary_line(order, out):
    ratios = [ratio_of(n, out[n]) for n in order]
    ratios = [r for r in ratios if r is not None and r > 0]
    if not ratios:
        return "no row ran on both sides"
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    wins = sum(r >= 1.5 for r in ratios)
    faster = sum(r > 1.0 for r in ratios)
    return (f"{len(ratios)} rows on both sides: geometric mean ratio {geo:.2f}x; "
            f"blitzio faster on {faster}, at least 1.5x on {wins}")


def print_table(cells):
    widths = [max(len(c[i]) for c in cells + [HEADER]) for i in range(len(HEADER))]

    def line(c):  # the row name left-aligned, the figures right-aligned
        return "  ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i])
                         for i, v in enumerate(c))

    print(line(HEADER))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))


def write_md(path, meta, cells, summary):
    m = meta
    lines = [
        f"Machine: {m.get('cpu', '?')}, {m.get('nproc', '?')} CPUs, Linux {m.get('kernel', '?')}. "
        f"Load average at start: {m.get('loadavg_at_start', '?')}. "
        f"Date: {m.get('date', '?')}. blitzio {m.get('commit', '?')}, Tokio {m.get('tokio', '?')}.",
        "",
        f"Command: `{m.get('command', '?')}` ({m.get('rounds', '?')} rounds, blitzio and Tokio "
        "alternating; each figure is the median across rounds of each round's median).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(HEADER) - 1)) + "|",
    ]
    for c in cells:
        lines.append("| " + " | ".join([f"`{c[0]}`"] + c[1:]) + " |")
    lines += [
        "",
        summary + ".",
        "",
        "ratio = Tokio ns/op ÷ blitzio ns/op (> 1: blitzio faster). "
        "spread = (max − min) ÷ median of ns/op across rounds. "
        "(B): the ratio compares B/op, not ns/op: for `idle_task_memory` B/op is the memory "
        "per idle task and ns/op only times spawning them. "
        f"{DASH} = the row exists on one side only.",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_dat(path, order, out):
    """Rows both sides have, top row first, for chart.gp: y, name, ratio, colour."""
    both = [(n, ratio_of(n, out[n])) for n in order if ratio_of(n, out[n]) is not None]
    with open(path, "w") as f:
        f.write("# y, row, ratio, colour (written by aggregate.py; y = 0 is the bottom bar)\n")
        for i, (name, r) in enumerate(both):
            colour = "0x2e8b57" if r >= 1.0 else "0xc0392b"
            label = name + (" (memory)" if name in MEMORY_ROWS else "")
            f.write(f'{len(both) - 1 - i} "{label}" {r:.6g} {colour}\n')
    return len(both)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raw", nargs="?")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--meta", action="store_true", help="print the meta line and exit")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--command", default="bench/compare/run.sh")
    a = ap.parse_args()

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if a.meta:
        print(json.dumps({"meta": make_meta(a.rounds, a.command, repo)}))
        return 0
    if not a.raw:
        ap.error("give a raw .jsonl file (or --meta)")

    meta, rows = load(a.raw)
    if not rows:
        print(f"aggregate: {a.raw}: no benchmark rows", file=sys.stderr)
        return 1
    order, out = summarize(rows)
    out_dir = a.out_dir or os.path.join(repo, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)

    cells = table_cells(order, out)
    summary = summary_line(order, out)
    print_table(cells)
    print()
    print(summary)

    doc = {
        "meta": dict(meta, raw=os.path.relpath(a.raw, repo)),
        "rows": [dict(row=n, ratio=ratio_of(n, out[n]),
                      ratio_of="bytes_per_op" if n in MEMORY_ROWS else "ns_per_op", **{s: out[n].get(s) for s in SIDES})
                 for n in order],
    }
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    write_md(os.path.join(out_dir, "latest.md"), meta, cells, summary)
    write_dat(os.path.join(out_dir, "ratios.dat"), order, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bench/compare/aggregate.py — turns one raw comparison run into the table.

Input: a raw file written by bench/compare/run.sh, bench/results/raw/<stamp>.jsonl.
Its first line is {"meta": {...}} (machine, date, command, rounds); every other
line is one benchmark row as a bench binary printed it with --json, tagged with
"side" ("blitzio" or "tokio"), "round" (1..N) and "bin" (the binary's name).

Per row and side it takes the median across rounds of ns_per_op (with the
min and max across rounds: the spread), of bytes_per_op and of allocs_per_op.
ratio = Tokio ns/op / blitzio ns/op, so > 1 means blitzio is faster.

Networking rows (bench/compare/net.sh) are lines tagged "kind":"net" with
round, mode, scenario and server, each carrying bench_echo_load's --json object
(or "status":"failed" and a reason). Per (scenario, mode, server) it takes the
median across rounds of msgs/s (spread = (max - min) / median), of p50/p99/p999
and of the server's CPU us per message, and sets msgs/s and CPU/msg against the
hand epoll server's and Tokio's in the same scenario and mode. They form a second
table after the micro rows (stdout, latest.md) and the "net" list of latest.json;
a raw file with only one kind of row gives only that table.

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
    "spawn_join", "spawn_join_fiber", "yield", "spawn_blocking", "sleep_register_cancel",
    "idle_task_memory",
    "fiber_switch", "cas_floor",
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
    meta, rows, net = {}, [], []
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
            elif obj.get("kind") == "net" and all(k in obj for k in NET_KEYS):
                net.append(obj)
            elif obj.get("side") in SIDES and "row" in obj and "ns_per_op" in obj:
                rows.append(obj)
            else:
                print(f"aggregate: {path}:{n}: not a row, skipped", file=sys.stderr)
    return meta, rows, net


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


def write_md(path, meta, cells, summary, with_table=True):
    m = meta
    lines = [
        f"Machine: {m.get('cpu', '?')}, {m.get('nproc', '?')} CPUs, Linux {m.get('kernel', '?')}. "
        f"Load average at start: {m.get('loadavg_at_start', '?')}. "
        f"Date: {m.get('date', '?')}. blitzio {m.get('commit', '?')}, Tokio {m.get('tokio', '?')}.",
        "",
    ]
    if not with_table:  # networking only: the caller appends its section
        lines.append(f"Command: `{m.get('command', '?')}` ({m.get('rounds', '?')} rounds).")
        lines.append("")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return
    lines += [
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


# ------------------------------------------------------------------ networking rows

NET_KEYS = ("round", "mode", "scenario", "server")
# Display order; names not listed follow in the order they first appear.
NET_SCENARIOS = ["100x64", "1000x64", "10x16384"]
NET_MODES = ["one_cpu", "pinned", "shared"]
NET_SERVERS = ["blitzio_uring", "blitzio_epoll", "blitzio_uring_sl", "blitzio_epoll_sl",
               "blitzio_uring_rpw", "tokio", "libuv", "hand_epoll", "hand_uring"]
NET_SERVER_NAMES = {"blitzio_uring": "blitzio io_uring", "blitzio_epoll": "blitzio epoll",
                    "blitzio_uring_sl": "blitzio io_uring, stackless",
                    "blitzio_epoll_sl": "blitzio epoll, stackless",
                    "blitzio_uring_rpw": "blitzio io_uring, ring per worker", "tokio": "Tokio",
                    "libuv": "libuv", "hand_epoll": "hand epoll", "hand_uring": "hand io_uring"}
NET_MODE_NAMES = {"one_cpu": "one-CPU", "pinned": "pinned", "shared": "shared"}


def scenario_name(sc):
    conns, _, size = sc.partition("x")
    try:
        n = int(size)
    except ValueError:
        return sc
    return f"{conns} x {n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{conns} x {n} B"


def ordered(seen, order):
    return [x for x in order if x in seen] + [x for x in seen if x not in order]


def summarize_net(rows):
    """One dict per (scenario, mode, server) in display order."""
    by, seen = {}, {"scenario": [], "mode": [], "server": []}
    for r in rows:
        for k in seen:
            if r[k] not in seen[k]:
                seen[k].append(r[k])
        by.setdefault((r["scenario"], r["mode"], r["server"]), []).append(r)
    cells = []
    for sc in ordered(seen["scenario"], NET_SCENARIOS):
        for mode in ordered(seen["mode"], NET_MODES):
            for srv in ordered(seen["server"], NET_SERVERS):
                rs = by.get((sc, mode, srv))
                if not rs:
                    continue
                ok = [r for r in rs if r.get("status") != "failed" and "msgs_per_s" in r]

                def med(key, ok=ok):
                    vals = [float(r[key]) for r in ok if r.get(key) is not None]
                    return statistics.median(vals) if vals else None

                rate = med("msgs_per_s")
                rates = [float(r["msgs_per_s"]) for r in ok]
                cells.append({
                    "scenario": sc, "mode": mode, "server": srv,
                    "msgs_per_s": rate,
                    "msgs_min": min(rates) if rates else None,
                    "msgs_max": max(rates) if rates else None,
                    "spread": (max(rates) - min(rates)) / rate if rates and rate else None,
                    "p50_us": med("p50_us"), "p99_us": med("p99_us"), "p999_us": med("p999_us"),
                    "server_us_per_msg": med("server_us_per_msg"),
                    "client_us_per_msg": (statistics.median(
                        [float(r["client_cpu_s"]) * 1e6 / r["msgs"] for r in ok if r.get("msgs")])
                        if any(r.get("msgs") for r in ok) else None),
                    "workers": rs[-1].get("workers"),
                    "rounds": len(ok),
                    "failed": len(rs) - len(ok),
                    "failures": sorted({r.get("reason", "?") for r in rs if r not in ok}),
                    "errors": sum(int(r.get("errors", 0)) for r in ok),
                    "not_stopped_by_sigterm": sum(r.get("stopped") not in ("sigterm", None)
                                                  for r in ok),
                })
    # Ratios against the references in the same scenario and mode.
    ref = {(c["scenario"], c["mode"], c["server"]): c for c in cells}
    for c in cells:
        for name in ("hand_epoll", "tokio"):
            base = ref.get((c["scenario"], c["mode"], name))
            r_rate = r_cpu = None
            if base and base["msgs_per_s"] and c["msgs_per_s"] is not None:
                r_rate = c["msgs_per_s"] / base["msgs_per_s"]
            if base and base["server_us_per_msg"] and c["server_us_per_msg"] is not None:
                r_cpu = c["server_us_per_msg"] / base["server_us_per_msg"]
            c[f"rate_vs_{name}"] = r_rate
            c[f"cpu_vs_{name}"] = r_cpu
    return cells


NET_HEADER = ["scenario", "mode", "server", "msgs/s", "spread", "p50 us", "p99 us", "p999 us",
              "srv us/msg", "x hand", "x Tokio", "cpu x hand", "errors"]


def fmt_num(v, digits=0):
    if v is None:
        return DASH
    return f"{v:,.{digits}f}"


def fmt_ratio(v):
    return f"{v:.2f}x" if v is not None else DASH


def net_cells(cells):
    out = []
    for c in cells:
        failed = f" ({c['failed']} failed)" if c["failed"] else ""
        out.append([
            scenario_name(c["scenario"]),
            NET_MODE_NAMES.get(c["mode"], c["mode"]),
            NET_SERVER_NAMES.get(c["server"], c["server"]) + failed,
            fmt_num(c["msgs_per_s"]),
            f"{c['spread'] * 100:.0f}%" if c["spread"] is not None and c["rounds"] > 1 else DASH,
            fmt_num(c["p50_us"]), fmt_num(c["p99_us"]), fmt_num(c["p999_us"]),
            fmt_num(c["server_us_per_msg"], 2),
            fmt_ratio(c["rate_vs_hand_epoll"]), fmt_ratio(c["rate_vs_tokio"]),
            fmt_ratio(c["cpu_vs_hand_epoll"]),
            str(c["errors"]) if c["rounds"] else DASH,
        ])
    return out


def net_summary(cells):
    runs = sum(c["rounds"] for c in cells)
    failed = sum(c["failed"] for c in cells)
    errors = sum(c["errors"] for c in cells)
    killed = sum(c["not_stopped_by_sigterm"] for c in cells)
    s = f"{runs} networking runs, {errors} byte errors, {failed} failed"
    if killed:
        s += f", {killed} servers not stopped by SIGTERM"
    for c in cells:
        for why in c["failures"]:
            s += f"; {c['server']} {c['mode']} {c['scenario']}: {why}"
    return s


NET_NOTE = (
    "msgs/s: median across rounds; spread = (max − min) ÷ median. p50/p99/p999: medians "
    "of each run's round-trip percentiles. srv us/msg: the server's user+sys CPU over the "
    "measured window ÷ messages. x hand, x Tokio: msgs/s ÷ that server's msgs/s in the same "
    "scenario and mode (> 1: faster); cpu x hand: srv us/msg ÷ hand epoll's (< 1: cheaper). "
    "one-CPU: server and load generator on one core; pinned: one core each; shared: no "
    "affinity. Servers get one worker per core they may use (libuv and hand epoll are "
    "single-threaded); the load generator is one blitzio worker on epoll.")


def print_aligned(header, cells, left=1):
    widths = [max(len(c[i]) for c in cells + [header]) for i in range(len(header))]

    def line(c):
        return "  ".join(v.ljust(widths[i]) if i < left else v.rjust(widths[i])
                         for i, v in enumerate(c))

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))


def net_md(cells, summary):
    lines = [
        "## Networking: echo servers",
        "",
        "| " + " | ".join(NET_HEADER) + " |",
        "|" + "|".join([":---"] * 3 + ["---:"] * (len(NET_HEADER) - 3)) + "|",
    ]
    for c in net_cells(cells):
        lines.append("| " + " | ".join(c) + " |")
    lines += ["", summary + ".", "", NET_NOTE, ""]
    return lines


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

    meta, rows, net = load(a.raw)
    if not rows and not net:
        print(f"aggregate: {a.raw}: no benchmark rows", file=sys.stderr)
        return 1
    order, out = summarize(rows)
    out_dir = a.out_dir or os.path.join(repo, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)

    cells = table_cells(order, out)
    summary = summary_line(order, out)
    if rows:
        print_table(cells)
        print()
        print(summary)
    net_summ = None
    if net:
        ncells = summarize_net(net)
        net_summ = net_summary(ncells)
        if rows:
            print()
        print_aligned(NET_HEADER, net_cells(ncells), left=3)
        print()
        print(net_summ)

    doc = {
        "meta": dict(meta, raw=os.path.relpath(a.raw, repo)),
        "rows": [dict(row=n, ratio=ratio_of(n, out[n]),
                      ratio_of="bytes_per_op" if n in MEMORY_ROWS else "ns_per_op", **{s: out[n].get(s) for s in SIDES})
                 for n in order],
    }
    if net:
        doc["net"] = ncells
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    md_path = os.path.join(out_dir, "latest.md")
    write_md(md_path, meta, cells, summary, with_table=bool(rows))
    if net:
        with open(md_path, "a") as f:
            f.write("\n" + "\n".join(net_md(ncells, net_summ)))
    write_dat(os.path.join(out_dir, "ratios.dat"), order, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

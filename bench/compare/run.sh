#!/usr/bin/env bash
# bench/compare/run.sh — blitzio against Tokio, side by side in one run (issue 7).
#
# Builds the release C benchmarks and the Tokio crate, then runs the two sides
# alternately, round by round (blitzio, Tokio, blitzio, Tokio, ...), so slow
# drift of the machine (frequency, noisy neighbours) falls on both sides alike.
# Every JSON line the benchmarks print is tagged with its side, round and binary
# and kept in bench/results/raw/<stamp>.jsonl; aggregate.py turns that file into
# the table (stdout), latest.json and latest.md, and chart.gp into ratios.png
# and ratios.svg, all under bench/results/.
#
#     bench/compare/run.sh              # or: make bench-compare
#     ROUNDS=5 bench/compare/run.sh     # more rounds (default 3)
#
# Environment:
#   ROUNDS=N         rounds of (blitzio, Tokio); default 3
#   RUNS=N WARMUPS=N passed to every bench binary as --runs/--warmups
#                    (default: the binaries' own, 10 runs after 5 warm-ups)
#   BUILD=0          skip both builds and use the binaries already there
#   BENCH_TIMEOUT=S  seconds one bench binary may take before it is stopped; default 300
#
# A side that cannot be built is reported and left out; the rest still runs.
# Takes about 30 s at the defaults on 2 cores (most of it Tokio's suite, ~3 s a round).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

rounds_given=${ROUNDS:-}
ROUNDS=${ROUNDS:-3}
BUILD=${BUILD:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: ROUNDS must be a positive integer" >&2; exit 2; }

c_dir=build-release/bench
tokio_bin=bench/tokio/target/release/blitz_tokio_bench
# The C benchmarks the comparison expects (bench/<name>.c -> bench_<name>).
# Any other bench_* binary is run too; bench_echo* belong to the networking hook.
expected_c=(rt sync chan time_sleep fiber_switch)

results=bench/results
stamp=$(date +%Y%m%d-%H%M%S)
raw=$results/raw/$stamp.jsonl
log=$results/raw/$stamp.log
mkdir -p "$results/raw"
: >"$log"

bench_args=()
[[ -n ${RUNS:-} ]] && bench_args+=(--runs "$RUNS")
[[ -n ${WARMUPS:-} ]] && bench_args+=(--warmups "$WARMUPS")

t_start=$SECONDS
say() { printf '== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

# ---------------------------------------------------------------- builds

c_build_ok=1
c_build_start=$(date +%s)
build_c() {
    say "building the release C benchmarks (build-release/)"
    if ! command -v cmake >/dev/null; then
        note "cmake not found (apt-get install cmake build-essential); using any binaries already built"
        c_build_ok=0
        return
    fi
    # Only the benchmarks and the library (the blz_benches target, as `make bench` does),
    # not the tests: that keeps a fresh build short. -k builds every bench that compiles
    # even when another one does not.
    if cmake --preset release >>"$log" 2>&1 \
        && cmake --build build-release -j"$(nproc)" --target blz_benches -- -k >>"$log" 2>&1; then
        note "ok"
    else
        c_build_ok=0
        note "the C build failed (see $log); benchmarks that did build still run"
        grep -E 'error|Error' "$log" | head -5 | sed 's/^/   | /' || true
    fi
}

tokio_ok=1
build_tokio() {
    say "building the Tokio benchmark (bench/tokio/build.sh)"
    if bench/tokio/build.sh >>"$log" 2>&1 && [[ -x $tokio_bin ]]; then
        note "ok ($(grep -A1 '^name = "tokio"$' bench/tokio/Cargo.lock | sed -n 's/version = "\(.*\)"/Tokio \1/p'))"
    else
        tokio_ok=0
        note "could not build the Tokio side (see $log). To install what it needs:"
        note "    apt-get install librust-tokio-dev librust-async-channel-dev cargo"
        note "then run this again. Running the blitzio side alone."
    fi
}

if [[ $BUILD != 0 ]]; then
    build_c
    build_tokio
else
    say "BUILD=0: using the binaries already built"
    [[ -x $tokio_bin ]] || { tokio_ok=0; note "no $tokio_bin: the Tokio side is left out"; }
fi

# ---------------------------------------------------------------- what will run

c_bins=()
shopt -s nullglob
for b in "$c_dir"/bench_*; do
    [[ -x $b && -f $b ]] || continue
    name=${b##*/}
    [[ $name == bench_echo* ]] && continue # networking: see run_networking below
    c_bins+=("$b")
done
shopt -u nullglob
for e in "${expected_c[@]}"; do
    [[ -x $c_dir/bench_$e ]] || note "bench_$e: not built, skipped (bench/$e.c missing or not compiling)"
done
if [[ $c_build_ok == 0 ]]; then
    for b in "${c_bins[@]}"; do
        [[ $(stat -c %Y "$b") -lt $c_build_start ]] && note "${b##*/}: from an earlier build (stale)"
    done
fi
if [[ ${#c_bins[@]} -eq 0 && $tokio_ok == 0 ]]; then
    echo "run.sh: nothing to run: no C benchmark and no Tokio binary" >&2
    exit 1
fi
[[ ${#c_bins[@]} -eq 0 ]] && note "no C benchmark binaries: running the Tokio side alone"
names=("${c_bins[@]##*/}")
say "C benchmarks: ${names[*]:-none}"

# ---------------------------------------------------------------- rounds

command_line="bench/compare/run.sh"
[[ -n ${MAKELEVEL:-} ]] && command_line="make bench-compare"
[[ -n $rounds_given ]] && command_line="ROUNDS=$ROUNDS $command_line"
[[ -n ${RUNS:-} ]] && command_line="RUNS=$RUNS $command_line"
[[ -n ${WARMUPS:-} ]] && command_line="WARMUPS=$WARMUPS $command_line"
python3 bench/compare/aggregate.py --meta --rounds "$ROUNDS" --command "$command_line" >"$raw"

# run_one SIDE ROUND BINARY: runs one binary with --json, appends its rows to
# the raw file tagged with side, round and binary name. Never fails the script.
run_one() {
    local side=$1 round=$2 bin=$3 name=${3##*/} out rc=0 t0=$SECONDS n
    out=$(timeout "$BENCH_TIMEOUT" "$bin" --json "${bench_args[@]}" 2>>"$log") || rc=$?
    n=$(grep -c '^{' <<<"$out" || true)
    grep '^{' <<<"$out" \
        | sed "s/^{/{\"side\":\"$side\",\"round\":$round,\"bin\":\"$name\",/" >>"$raw" || true
    local msg="$n rows, $((SECONDS - t0)) s"
    ((rc == 124)) && msg="$msg; stopped after ${BENCH_TIMEOUT} s"
    ((rc != 0 && rc != 124)) && msg="$msg; exit status $rc (stderr in $log)"
    printf '   round %d/%d  %-7s  %-22s %s\n' "$round" "$ROUNDS" "$side" "$name" "$msg"
}

say "running $ROUNDS rounds, blitzio and Tokio alternating"
for ((r = 1; r <= ROUNDS; r++)); do
    for b in "${c_bins[@]}"; do run_one blitzio "$r" "$b"; done
    [[ $tokio_ok == 1 ]] && run_one tokio "$r" "$tokio_bin"
done

# ---------------------------------------------------------------- table and chart

say "results ($raw)"
python3 bench/compare/aggregate.py "$raw" --out-dir "$results"
note "wrote $results/latest.json and $results/latest.md"

ensure_gnuplot() {
    command -v gnuplot >/dev/null && return 0
    command -v apt-get >/dev/null || return 1
    note "installing gnuplot-nox for the chart"
    { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox \
        || { as_root apt-get update -qq \
            && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox; }
    } >>"$log" 2>&1
    command -v gnuplot >/dev/null
}

if [[ $tokio_ok == 0 ]]; then
    note "chart skipped: no Tokio figures to compare with"
elif ! [[ -s $results/ratios.dat ]] || [[ $(grep -vc '^#' "$results/ratios.dat") -eq 0 ]]; then
    note "chart skipped: no row ran on both sides"
elif ! ensure_gnuplot; then
    note "chart skipped: gnuplot is missing and could not be installed (apt-get install gnuplot-nox)"
else
    subtitle=$(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))["meta"]
print("%s, %s CPUs, %s, %s rounds" % (m["cpu"], m["nproc"], m["date"], m["rounds"]))' "$results/latest.json")
    if gnuplot -e "data='$results/ratios.dat'; out='$results/ratios'; subtitle='${subtitle//\'/}'" \
        bench/compare/chart.gp >>"$log" 2>&1; then
        note "wrote $results/ratios.png and $results/ratios.svg"
    else
        note "chart failed (see $log)"
    fi
fi

# ---------------------------------------------------------------- networking hook
#
# HOOK, not written yet: the echo comparison of issue 7 ("Networking rows":
# one load generator of ours against blitzio on io_uring and on epoll, Tokio's
# tokio_echo, a libuv server and a hand-written epoll server; one-CPU, pinned and
# shared modes; msgs/s, p50/p99/p999, server CPU per message). It runs only once
# bench_echo_load exists; until then it says so and returns. The driver belongs
# here, starting and stopping each server by PID, loopback only, bounded in time.
run_networking() {
    local load=$c_dir/bench_echo_load
    if [[ ! -x $load ]]; then
        say "networking rows: not built yet (no $load)"
        return 0
    fi
    local s servers=()
    for s in build-release/examples/echo_server bench/tokio/target/release/tokio_echo; do
        [[ -x $s ]] && servers+=("$s")
    done
    say "networking rows: $load and servers (${servers[*]:-none}) are there, but the driver is not written yet (run_networking in bench/compare/run.sh)"
}
run_networking

say "done in $((SECONDS - t_start)) s; raw rows in $raw"

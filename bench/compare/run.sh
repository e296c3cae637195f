#!/usr/bin/env bash
# bench/compare/run.sh — blitzio against Tokio, side by side in one run (issue 7).
#
# Builds the release C benchmarks and the Tokio crate, then runs the two sides
# alternately, row by row and round by round (row X on blitzio, row X on Tokio,
# row Y ..., with the side that goes first swapping each round), so drift of
# the machine (frequency, noisy neighbours) falls on both sides alike.
# Then the networking rows: bench/compare/net.sh drives the echo servers
# (blitzio on io_uring and on epoll in their variants, Tokio, libuv, hand-written
# epoll and io_uring servers; the list is in net.sh) with bench_echo_load in three CPU placements (see net.sh for the method).
# Every JSON line the benchmarks print is tagged with its side, round and binary
# and kept in bench/results/raw/<stamp>.jsonl; aggregate.py turns that file into
# the table (stdout), latest.json and latest.md, and chart.gp into ratios.png
# and ratios.svg, all under bench/results/.
#
#     bench/compare/run.sh              # or: make bench-compare
#     ROUNDS=9 bench/compare/run.sh     # more rounds (default 5)
#     NET=0 bench/compare/run.sh        # micro rows only (about 70 s)
#     NET_ONLY=1 NET_SECS=1 NET_ROUNDS=1 bench/compare/run.sh   # a quick networking check
#
# Environment:
#   ROUNDS=N         rounds of the micro rows (each row: one process per side); default 5
#   RUNS=N WARMUPS=N passed to every bench binary as --runs/--warmups
#                    (default: the binaries' own, 10 runs after 5 warm-ups)
#   BUILD=0          skip both builds and use the binaries already there
#   BENCH_TIMEOUT=S  seconds one bench binary may take before it is stopped; default 300
#   NET=0            skip the networking rows
#   NET_ONLY=1       only the networking rows (no micro rows, no chart; latest.md and
#                    latest.json then hold the networking table alone)
#   NET_SECS=S       measured window of each echo run; default 2
#   NET_ROUNDS=N     networking rounds; default 3
#   NET_SCENARIOS, NET_MODES, NET_SERVERS, NET_SERVER_CPU, NET_CLIENT_CPU,
#   NET_START_TIMEOUT, NET_STOP_TIMEOUT: see bench/compare/net.sh
#
# A side that cannot be built is reported and left out; the rest still runs; so is a
# missing echo server (no cargo, no libuv).
# Takes about 70 s for the micro rows at the defaults on 2 cores (~14 s a round,
# one process per row and side), plus about 10 min for the networking rows (3 rounds of
# net.sh's 72 echo runs of NET_SECS=2, ~2.7 s each with setup), plus the builds.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

rounds_given=${ROUNDS:-}
ROUNDS=${ROUNDS:-5}
BUILD=${BUILD:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
NET=${NET:-1}
NET_ONLY=${NET_ONLY:-0}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: ROUNDS must be a positive integer" >&2; exit 2; }
if [[ $NET == 0 && $NET_ONLY == 1 ]]; then
    echo "run.sh: NET=0 and NET_ONLY=1 leave nothing to run" >&2
    exit 2
fi
micro=1
[[ $NET_ONLY == 1 ]] && micro=0

c_dir=build-release/bench
tokio_bin=bench/tokio/target/release/blitz_tokio_bench
# The C benchmarks the comparison expects (bench/<name>.c -> bench_<name>).
# Any other bench_* binary is run too; bench_echo* and bench_server_* belong to the
# networking rows (net.sh).
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

# ensure_deb PACKAGE WHY: installs a Debian package (best effort, apt-get update
# only when the plain install fails); returns non-zero when it could not.
ensure_deb() {
    command -v apt-get >/dev/null || return 1
    note "installing $1 for $2"
    { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" \
        || { as_root apt-get update -qq \
            && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1"; }
    } >>"$log" 2>&1
}

c_build_ok=1
c_build_start=$(date +%s)
build_c() {
    say "building the release C benchmarks (build-release/)"
    if [[ $NET != 0 && ! -e /usr/include/uv.h ]]; then
        ensure_deb libuv1-dev "the libuv echo server" \
            || note "libuv1-dev could not be installed: the libuv server is left out"
    fi
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
    [[ $name == bench_echo* || $name == bench_server_* ]] && continue # networking: net.sh
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
if [[ $micro == 1 && ${#c_bins[@]} -eq 0 && $tokio_ok == 0 && $NET == 0 ]]; then
    echo "run.sh: nothing to run: no C benchmark and no Tokio binary" >&2
    exit 1
fi
if [[ $micro == 1 ]]; then
    [[ ${#c_bins[@]} -eq 0 ]] && note "no C benchmark binaries: running the Tokio side alone"
    names=("${c_bins[@]##*/}")
    say "C benchmarks: ${names[*]:-none}"
fi

# ---------------------------------------------------------------- rounds

command_line="bench/compare/run.sh"
[[ -n ${MAKELEVEL:-} ]] && command_line="make bench-compare"
[[ -n $rounds_given ]] && command_line="ROUNDS=$ROUNDS $command_line"
[[ -n ${RUNS:-} ]] && command_line="RUNS=$RUNS $command_line"
[[ -n ${WARMUPS:-} ]] && command_line="WARMUPS=$WARMUPS $command_line"
for v in NET NET_ONLY NET_SECS NET_ROUNDS NET_SCENARIOS NET_MODES NET_SERVERS; do
    [[ -n ${!v:-} && ! ( $v == NET && ${!v} == 1 ) && ! ( $v == NET_ONLY && ${!v} == 0 ) ]] \
        && command_line="$v=${!v// /,} $command_line"
done
python3 bench/compare/aggregate.py --meta --rounds "$ROUNDS" --command "$command_line" >"$raw"

# run_one SIDE ROUND BINARY [ROW...]: runs one binary with --json (only the
# given rows, if any), appends its rows to the raw file tagged with side, round
# and binary name, and prints one progress line. Never fails the script.
run_one() {
    local side=$1 round=$2 bin=$3 name=${3##*/} out rc=0 t0=$SECONDS n
    shift 3
    out=$(timeout "$BENCH_TIMEOUT" "$bin" --json "${bench_args[@]}" "$@" 2>>"$log") || rc=$?
    n=$(grep -c '^{' <<<"$out" || true)
    grep '^{' <<<"$out" \
        | sed "s/^{/{\"side\":\"$side\",\"round\":$round,\"bin\":\"$name\",/" >>"$raw" || true
    local what=$name
    (($# == 1)) && what="$name $1"
    local msg="$n rows, $((SECONDS - t0)) s"
    ((rc == 124)) && msg="$msg; stopped after ${BENCH_TIMEOUT} s"
    ((rc != 0 && rc != 124)) && msg="$msg; exit status $rc (stderr in $log)"
    printf '   round %d/%d  %-7s  %-36s %s\n' "$round" "$ROUNDS" "$side" "$what" "$msg"
}

# Rows both sides have run in pairs, one process per row and side, the side that
# goes first alternating from round to round: a row's two figures are then taken
# seconds apart, not a whole suite apart. (This VM's speed for some code shifts
# between two levels for seconds at a time; whole-suite alternation let one side
# of a row land in the slow level and the other in the fast one.) A binary that
# cannot list its rows (--list) runs whole, as do rows only one side has.
tokio_rows=()
if [[ $micro == 1 && $tokio_ok == 1 ]]; then
    mapfile -t tokio_rows < <("$tokio_bin" --list 2>>"$log" || true)
fi
has_tokio_row() {
    local r
    for r in "${tokio_rows[@]}"; do [[ $r == "$1" ]] && return 0; done
    return 1
}

run_round() {
    local r=$1 b row first=blitzio
    local -a rows solo shared_all=()
    ((r % 2 == 0)) && first=tokio
    for b in "${c_bins[@]}"; do
        rows=()
        mapfile -t rows < <("$b" --list 2>/dev/null || true)
        if ((${#rows[@]} == 0)); then
            run_one blitzio "$r" "$b"
            continue
        fi
        solo=()
        for row in "${rows[@]}"; do
            if has_tokio_row "$row"; then
                shared_all+=("$row")
                if [[ $first == blitzio ]]; then
                    run_one blitzio "$r" "$b" "$row"
                    run_one tokio "$r" "$tokio_bin" "$row"
                else
                    run_one tokio "$r" "$tokio_bin" "$row"
                    run_one blitzio "$r" "$b" "$row"
                fi
            else
                solo+=("$row")
            fi
        done
        ((${#solo[@]} > 0)) && run_one blitzio "$r" "$b" "${solo[@]}"
    done
    # Tokio rows with no C counterpart (none today) still run, once per round.
    solo=()
    for row in "${tokio_rows[@]}"; do
        local seen=0 s
        for s in "${shared_all[@]}"; do [[ $s == "$row" ]] && seen=1; done
        ((seen == 0)) && solo+=("$row")
    done
    ((${#solo[@]} > 0)) && run_one tokio "$r" "$tokio_bin" "${solo[@]}"
    return 0
}

if [[ $micro == 1 ]]; then
    say "running $ROUNDS rounds, blitzio and Tokio alternating row by row"
    for ((r = 1; r <= ROUNDS; r++)); do
        run_round "$r"
    done
else
    say "NET_ONLY=1: micro rows skipped"
fi

# ---------------------------------------------------------------- networking rows
#
# The echo comparison of issue 7 (bench/compare/net.sh has the method): one load
# generator of ours against blitzio on io_uring and on epoll, Tokio's tokio_echo,
# a libuv server and a hand-written epoll server, in one-CPU, pinned and shared
# modes; msgs/s, p50/p99/p999, server CPU per message. Its rows go to the same raw
# file. A failure inside it is reported, never fatal for the rest.
run_networking() {
    if [[ $NET == 0 ]]; then
        say "NET=0: networking rows skipped"
        return 0
    fi
    NET_ROUNDS=${NET_ROUNDS:-3} bash bench/compare/net.sh "$raw" "$log" \
        || note "networking rows stopped early (exit status $?); the rows made so far are kept"
}
run_networking

# ---------------------------------------------------------------- table and chart

say "results ($raw)"
if python3 bench/compare/aggregate.py "$raw" --out-dir "$results"; then
    note "wrote $results/latest.json and $results/latest.md"
else
    note "no rows to aggregate"
fi

ensure_gnuplot() {
    command -v gnuplot >/dev/null || ensure_deb gnuplot-nox "the chart"
    command -v gnuplot >/dev/null
}

if [[ $micro == 0 ]]; then
    note "chart skipped: NET_ONLY=1 (the chart shows the micro rows)"
elif [[ $tokio_ok == 0 ]]; then
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

say "done in $((SECONDS - t_start)) s; raw rows in $raw"

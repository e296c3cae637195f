#!/usr/bin/env bash
# bench/compare/cachesim_echo.sh — user-space instructions and cache misses per
# echoed message, from callgrind's cache model: deterministic, so it can
# compare two builds on a noisy machine where timings cannot.
#
#     bench/compare/cachesim_echo.sh [SERVER] [CONNS] [SHORT_S] [LONG_S]
#     SERVER: blitzio_epoll (default), blitzio_uring, blitzio_epoll_sl and
#             blitzio_uring_sl (echo_server --stackless), hand_epoll, hand_uring; SERVER_BIN=path runs that binary instead
#             (another build of the same server, for an A/B)
#
# The server runs under callgrind with one worker (BLZ_WORKERS=1), a 32 KiB
# L1 and a 512 KiB last level (this machine's L2); bench_echo_load drives it
# with CONNS connections x 64 B, depth 1, for SHORT_S and then LONG_S seconds
# (defaults 1000, 4, 16). Each figure is the difference between the two runs
# divided by the difference in messages, so start-up, connection set-up and
# teardown cancel out. Only user space is counted (valgrind does not see the
# kernel). Needs valgrind and the release build (make bench builds it). The
# server is stopped by its PID; the counts are dumped before, since an
# io_uring server does not see SIGTERM under valgrind.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
server=${1:-blitzio_epoll}
conns=${2:-1000}
short=${3:-4}
long=${4:-16}
load=build-release/bench/bench_echo_load
case $server in
blitzio_epoll) bin=build-release/examples/echo_server backend=epoll args= ;;
blitzio_uring) bin=build-release/examples/echo_server backend=io_uring args= ;;
blitzio_epoll_sl) bin=build-release/examples/echo_server backend=epoll args=--stackless ;;
blitzio_uring_sl) bin=build-release/examples/echo_server backend=io_uring args=--stackless ;;
hand_epoll) bin=build-release/bench/bench_server_hand_epoll backend= args= ;;
hand_uring) bin=build-release/bench/bench_server_hand_uring backend= args= ;;
*)
    echo "cachesim_echo.sh: unknown server '$server'" >&2
    exit 2
    ;;
esac
bin=${SERVER_BIN:-$bin}
command -v callgrind_control >/dev/null || { echo "cachesim_echo.sh: valgrind is not installed" >&2; exit 1; }
[[ -x $bin && -x $load ]] || { echo "cachesim_echo.sh: build first (make bench)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d /tmp/blz_cachesim.XXXXXX)
trap 'rm -rf "$work"' EXIT

# one_run SECS: prints "MSGS Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw" (the
# callgrind totals in its own event order, messages first).
one_run() {
    local secs=$1 out=$work/run.$1 pid addr= res
    env BLZ_WORKERS=1 ${backend:+BLZ_BACKEND=$backend} valgrind --tool=callgrind \
        --cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=524288,8,64 \
        --callgrind-out-file="$out.cg" "$bin" $args 127.0.0.1:0 >"$out.stdout" 2>"$out.vg" &
    pid=$!
    for _ in $(seq 600); do
        if [[ $(head -n1 "$out.stdout" 2>/dev/null) =~ ([0-9.]+:[0-9]+) ]]; then
            addr=${BASH_REMATCH[1]}
            break
        fi
        sleep 0.1
    done
    if [[ -z $addr ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        echo "cachesim_echo.sh: the server did not start (see $out.vg)" >&2
        return 1
    fi
    res=$("$load" -a "$addr" -b epoll -w 1 -c "$conns" -s 64 -d 1 -t "$secs" --json 2>/dev/null \
        | grep '^{' | tail -n1)
    callgrind_control -d "$pid" >/dev/null 2>&1 || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # The dump taken while the load ran (.cg.1) if there is one, else the final file.
    local cg=$out.cg
    [[ -s $out.cg.1 ]] && cg=$out.cg.1
    python3 - "$res" "$cg" <<'PY'
import json, sys
msgs = json.loads(sys.argv[1])["msgs"]
events = totals = None
for line in open(sys.argv[2]):
    if line.startswith("events:"):
        events = line.split()[1:]
    elif line.startswith(("summary:", "totals:")) and totals is None:
        totals = [int(x) for x in line.split()[1:]]
print(msgs, " ".join(f"{e}={v}" for e, v in zip(events, totals)))
PY
}

a=$(one_run "$short")
b=$(one_run "$long")
python3 - "$server" "$conns" "$a" "$b" <<'PY'
import sys
server, conns = sys.argv[1], sys.argv[2]
def parse(s):
    msgs, *kv = s.split()
    return int(msgs), {k: int(v) for k, v in (x.split("=") for x in kv)}
ma, a = parse(sys.argv[3])
mb, b = parse(sys.argv[4])
dm = mb - ma
if dm <= 0:
    sys.exit("cachesim_echo.sh: the long run echoed no more messages than the short one")
keys = ["Ir", "D1mr", "D1mw", "DLmr", "DLmw"]
print(f"{server} conns={conns} messages={dm} per message: " +
      " ".join(f"{k}={(b[k] - a[k]) / dm:.1f}" for k in keys))
PY

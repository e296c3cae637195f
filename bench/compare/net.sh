#!/usr/bin/env bash
# bench/compare/net.sh — the networking rows of issue 7: one load generator of ours
# (bench_echo_load, which verifies every echoed byte) against the echo servers below, in
# three CPU placements, several interleaved rounds.
#
#     bench/compare/net.sh RAW.jsonl [LOG]     # appends its rows to RAW (run.sh calls it so)
#     NET_SECS=1 ROUNDS=1 bench/compare/net.sh /tmp/net.jsonl && \
#         bench/compare/aggregate.py /tmp/net.jsonl --out-dir /tmp/net
#
# Servers (a missing one is reported and skipped; the rest still run):
#   blitzio_uring  build-release/examples/echo_server with BLZ_BACKEND=io_uring
#   blitzio_epoll  build-release/examples/echo_server with BLZ_BACKEND=epoll
#   blitzio_epoll_sl  the same with --stackless: a stackless future per connection that
#                  waits for readiness and reads into a per-thread buffer (no stack and
#                  no buffer per connection, as the hand epoll server)
#   blitzio_uring_sl  --stackless with BLZ_BACKEND=io_uring
#   blitzio_uring_rpw  blitzio_uring with a ring per worker (BLZ_RING_PER_WORKER=1;
#                  blz_runtime_config.ring_per_worker); shared mode only, the one
#                  with several workers
#   tokio          bench/tokio/target/release/tokio_echo (multi-thread runtime)
#   libuv          build-release/bench/bench_server_libuv (needs libuv1-dev)
#   hand_epoll     build-release/bench/bench_server_hand_epoll
#   hand_uring     build-release/bench/bench_server_hand_uring: single-threaded io_uring in
#                  completion mode (multishot accept and receive into provided buffers,
#                  DEFER_TASKRUN), the floor io_uring reaches here
# Scenarios: 100 x 64 B, 1000 x 64 B and 10 x 16 KiB connections x message size,
# depth 1 (one message in flight per connection).
# Modes:
#   one_cpu  server and load generator pinned (taskset) to the same core, NET_SERVER_CPU:
#            msgs/s = 1 / total CPU per round trip, the figure that separates servers
#   pinned   server on NET_SERVER_CPU, load generator on NET_CLIENT_CPU: tail latency
#   shared   no affinity
# Worker threads: a server gets one worker per core it may run on (BLZ_WORKERS, which
# both echo_server and tokio_echo read): 1 in one_cpu and pinned, nproc in shared.
# libuv, hand_epoll and hand_uring are single-threaded by design. The load generator is always the
# same: one blitzio worker on epoll (bench_echo_load -w 1 -b epoll).
#
# The server protocol: `SERVER 127.0.0.1:0` binds a free loopback port, and the first
# line the server writes to stdout contains the bound address as IP:PORT (the first
# such token counts: "echo_server: listening on 127.0.0.1:41234 (backend epoll)",
# "127.0.0.1:41234"); it stops on SIGTERM. Each server is started here, by PID
# (taskset and env exec, so $! is the server itself), driven, then sent SIGTERM and,
# if still there after NET_STOP_TIMEOUT seconds, SIGKILL, and reaped; the script
# checks that it is gone. Server CPU: bench_echo_load -p PID samples utime+stime of
# /proc/PID/stat at the start and end of its measured window (after every connection
# is up), so server CPU us/msg = CPU seconds / messages in the window.
#
# Rounds interleave: each round runs every (scenario, mode, server) once, the servers
# back to back within a scenario and mode, their order rotated by one each round, so
# machine drift falls on all of them alike. aggregate.py takes medians across rounds.
#
# Environment (defaults in brackets):
#   NET_SECS=S           measured window per run [2]
#   NET_ROUNDS=N         rounds [ROUNDS, else 3]
#   NET_SCENARIOS=...    CONNSxBYTES list ["100x64 1000x64 10x16384"]
#   NET_MODES=...        subset of "one_cpu pinned shared" [all three]
#   NET_SERVERS=...      subset of the server names above [all of them]
#   NET_SERVER_CPU=N     core for the server (and both sides in one_cpu) [1]
#   NET_CLIENT_CPU=N     core for the load generator in pinned [0]
#   NET_START_TIMEOUT=S  seconds a server may take to print its address [10]
#   NET_STOP_TIMEOUT=S   seconds between SIGTERM and SIGKILL [5]
# Every run is bounded by `timeout` (NET_SECS + 60 s). Time at the defaults:
# 72 runs a round of about NET_SECS + 0.7 s each: ~3.3 min a round, ~10 min for 3 rounds.
# Rows: one JSON line per run, bench_echo_load's object tagged with "kind":"net",
# round, mode, scenario, server, workers and how the server stopped; a run that could
# not be made is a line with "status":"failed" and a reason.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

raw=${1:?usage: net.sh RAW.jsonl [LOG]}
log=${2:-/dev/null}
NET_SECS=${NET_SECS:-2}
NET_ROUNDS=${NET_ROUNDS:-${ROUNDS:-3}}
NET_SCENARIOS=${NET_SCENARIOS:-100x64 1000x64 10x16384}
NET_SCENARIOS=${NET_SCENARIOS//,/ }
NET_MODES=${NET_MODES:-one_cpu pinned shared}
NET_MODES=${NET_MODES//,/ }
NET_SERVERS=${NET_SERVERS:-blitzio_uring blitzio_epoll blitzio_uring_sl blitzio_epoll_sl blitzio_uring_rpw tokio libuv hand_epoll hand_uring}
NET_SERVERS=${NET_SERVERS//,/ }
NET_SERVER_CPU=${NET_SERVER_CPU:-1}
NET_CLIENT_CPU=${NET_CLIENT_CPU:-0}
NET_START_TIMEOUT=${NET_START_TIMEOUT:-10}
NET_STOP_TIMEOUT=${NET_STOP_TIMEOUT:-5}
for v in NET_SECS NET_ROUNDS NET_START_TIMEOUT NET_STOP_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "net.sh: $v must be a positive integer" >&2; exit 2; }
done

load=build-release/bench/bench_echo_load
say() { printf '== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }

if [[ ! -x $load ]]; then
    say "networking rows skipped: no $load (build the blz_benches target)"
    exit 0
fi

# ---------------------------------------------------------------- servers

declare -A bin env_backend args
bin[blitzio_uring]=build-release/examples/echo_server
bin[blitzio_epoll]=build-release/examples/echo_server
bin[blitzio_epoll_sl]=build-release/examples/echo_server
bin[blitzio_uring_sl]=build-release/examples/echo_server
bin[blitzio_uring_rpw]=build-release/examples/echo_server
args[blitzio_epoll_sl]=--stackless
args[blitzio_uring_sl]=--stackless
bin[tokio]=bench/tokio/target/release/tokio_echo
bin[libuv]=build-release/bench/bench_server_libuv
bin[hand_epoll]=build-release/bench/bench_server_hand_epoll
bin[hand_uring]=build-release/bench/bench_server_hand_uring
env_backend[blitzio_uring]=io_uring
env_backend[blitzio_epoll]=epoll
env_backend[blitzio_epoll_sl]=epoll
env_backend[blitzio_uring_sl]=io_uring
env_backend[blitzio_uring_rpw]=io_uring
declare -A env_extra=([blitzio_uring_rpw]=BLZ_RING_PER_WORKER=1)
declare -A only_mode=([blitzio_uring_rpw]=shared) # one worker elsewhere: blitzio_uring itself
declare -A single_threaded=([libuv]=1 [hand_epoll]=1 [hand_uring]=1)
declare -A how_to=(
    [blitzio_uring]="the blz_benches target builds it (examples/echo_server.c)"
    [blitzio_epoll]="the blz_benches target builds it (examples/echo_server.c)"
    [blitzio_epoll_sl]="the blz_benches target builds it (examples/echo_server.c)"
    [blitzio_uring_sl]="the blz_benches target builds it (examples/echo_server.c)"
    [blitzio_uring_rpw]="the blz_benches target builds it (examples/echo_server.c)"
    [tokio]="bench/tokio/build.sh (apt-get install cargo librust-tokio-dev)"
    [libuv]="apt-get install libuv1-dev, then rebuild blz_benches"
    [hand_epoll]="the blz_benches target builds it (bench/servers/hand_epoll_echo.c)"
    [hand_uring]="the blz_benches target builds it (bench/servers/hand_uring_echo.c)"
)

servers=()
for s in $NET_SERVERS; do
    if [[ -z ${bin[$s]:-} ]]; then
        note "unknown server '$s' in NET_SERVERS, ignored"
    elif [[ ! -x ${bin[$s]} ]]; then
        note "$s: ${bin[$s]} is missing, skipped; to build it: ${how_to[$s]}"
    else
        servers+=("$s")
    fi
done
if [[ ${#servers[@]} -eq 0 ]]; then
    say "networking rows skipped: no echo server is built"
    exit 0
fi

# ---------------------------------------------------------------- cores, descriptors

ncpu=$(nproc)
can_pin() { taskset -c "$1" true 2>/dev/null; }
modes=()
for m in $NET_MODES; do
    case $m in
    one_cpu)
        if can_pin "$NET_SERVER_CPU"; then modes+=(one_cpu); else
            note "one_cpu skipped: cannot pin to core $NET_SERVER_CPU (NET_SERVER_CPU)"
        fi
        ;;
    pinned)
        if [[ $NET_SERVER_CPU == "$NET_CLIENT_CPU" ]]; then
            note "pinned skipped: NET_SERVER_CPU and NET_CLIENT_CPU are the same core"
        elif can_pin "$NET_SERVER_CPU" && can_pin "$NET_CLIENT_CPU"; then modes+=(pinned); else
            note "pinned skipped: cannot pin to cores $NET_SERVER_CPU and $NET_CLIENT_CPU"
        fi
        ;;
    shared) modes+=(shared) ;;
    *) note "unknown mode '$m' in NET_MODES, ignored" ;;
    esac
done

# Both sides hold one descriptor per connection (plus a few): raise the soft limit,
# inherited by the servers and the load generator, as far as the hard one allows.
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
want=65536
((hard < want)) && want=$hard
ulimit -n "$want" 2>/dev/null || true
nofile=$(ulimit -n)

scenarios=()
for sc in $NET_SCENARIOS; do
    if [[ ! $sc =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]]; then
        note "bad scenario '$sc' in NET_SCENARIOS (want CONNSxBYTES), ignored"
    elif ((BASH_REMATCH[1] + 64 > nofile)); then
        note "$sc skipped: RLIMIT_NOFILE is $nofile (ulimit -Hn is $hard)"
    else
        scenarios+=("$sc")
    fi
done
if [[ ${#modes[@]} -eq 0 || ${#scenarios[@]} -eq 0 ]]; then
    say "networking rows skipped: no mode or no scenario left to run"
    exit 0
fi

# ---------------------------------------------------------------- one run

tmp=$(mktemp -d "${TMPDIR:-/tmp}/blz-net.XXXXXX")
srv_pid=
started=() # every server PID this script started, checked at the end
cleanup() {
    [[ -n $srv_pid ]] && stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st%% *}
    [[ -n $st && $st != Z && $st != X ]]
}

# stop_server: SIGTERM, SIGKILL after NET_STOP_TIMEOUT, reap. Sets stop_how to how it
# ended: "sigterm", "sigkill", or "gone" when it had already exited.
stop_server() {
    local pid=$srv_pid i
    srv_pid=
    stop_how=sigterm
    if ! alive "$pid"; then
        stop_how=gone
    else
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < NET_STOP_TIMEOUT * 20; i++)); do
            alive "$pid" || break
            sleep 0.05
        done
        if alive "$pid"; then
            stop_how=sigkill
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# start_server NAME WORKERS CPU: starts it on 127.0.0.1:0 (pinned to CPU unless empty);
# sets srv_pid and srv_addr, or returns 1 with the reason in srv_err.
start_server() {
    local name=$1 workers=$2 cpu=$3 out=$tmp/$1.out i line
    local cmd=(env BLZ_WORKERS="$workers")
    [[ -n ${env_backend[$name]:-} ]] && cmd+=(BLZ_BACKEND="${env_backend[$name]}")
    [[ -n ${env_extra[$name]:-} ]] && cmd+=("${env_extra[$name]}")
    [[ -n $cpu ]] && cmd=(taskset -c "$cpu" "${cmd[@]}")
    : >"$out"
    "${cmd[@]}" "${bin[$name]}" ${args[$name]:-} 127.0.0.1:0 >"$out" 2>>"$log" &
    srv_pid=$!
    started+=("$srv_pid")
    srv_addr='' srv_err=''
    for ((i = 0; i < NET_START_TIMEOUT * 20; i++)); do
        line=$(head -n 1 "$out")
        if [[ $line =~ ([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+) ]]; then
            srv_addr=${BASH_REMATCH[1]}
            break
        fi
        alive "$srv_pid" || break
        sleep 0.05
    done
    if [[ -z $srv_addr ]]; then
        srv_err="no address on stdout after ${NET_START_TIMEOUT} s"
        alive "$srv_pid" || srv_err="exited before printing its address (stderr in $log)"
        stop_server
        return 1
    fi
    # taskset and env exec: by now the PID must be the server binary itself.
    if [[ $(readlink "/proc/$srv_pid/exe") != "$(readlink -f "${bin[$name]}")" ]]; then
        srv_err="PID $srv_pid is $(readlink "/proc/$srv_pid/exe"), not the server"
        stop_server
        return 1
    fi
    # blitzio names the backend it runs on; a silent fallback would mislabel the row.
    if [[ -n ${env_backend[$name]:-} && $line =~ \(backend\ ([a-z_]+)\) \
        && ${BASH_REMATCH[1]} != "${env_backend[$name]}" ]]; then
        srv_err="asked for backend ${env_backend[$name]}, runs on ${BASH_REMATCH[1]}"
        stop_server
        return 1
    fi
    return 0
}

# tag ROUND MODE SCENARIO SERVER WORKERS: the JSON prefix of a row.
tag() {
    printf '{"kind":"net","round":%d,"mode":"%s","scenario":"%s","server":"%s","workers":%d,' \
        "$@"
}

failed_row() { # ROUND MODE SCENARIO SERVER WORKERS REASON
    local reason=${6//\"/\'}
    { tag "$1" "$2" "$3" "$4" "$5"; printf '"status":"failed","reason":"%s"}\n' "$reason"; } >>"$raw"
    printf '   round %d/%d  %-7s  %-8s  %-13s FAILED: %s\n' "$1" "$NET_ROUNDS" "$2" "$3" "$4" "$6"
}

# run_one ROUND MODE SCENARIO SERVER
run_one() {
    local round=$1 mode=$2 sc=$3 name=$4 conns=${3%x*} bytes=${3#*x}
    local workers=1 scpu=$NET_SERVER_CPU ccpu=$NET_SERVER_CPU out rc=0 how
    case $mode in
    pinned) ccpu=$NET_CLIENT_CPU ;;
    shared) workers=$ncpu scpu='' ccpu='' ;;
    esac
    [[ -n ${single_threaded[$name]:-} ]] && workers=1 # it ignores BLZ_WORKERS
    if ! start_server "$name" "$workers" "$scpu"; then
        failed_row "$round" "$mode" "$sc" "$name" "$workers" "server: $srv_err"
        return
    fi
    local cmd=(timeout -k 5 $((NET_SECS + 60)))
    [[ -n $ccpu ]] && cmd+=(taskset -c "$ccpu")
    cmd+=("$load" -a "$srv_addr" -p "$srv_pid" -b epoll -w 1 -c "$conns" -s "$bytes" -d 1
        -t "$NET_SECS" --json)
    out=$("${cmd[@]}" 2>>"$log") || rc=$?
    stop_server
    how=$stop_how
    out=$(grep '^{' <<<"$out" | tail -n 1 || true)
    if [[ -z $out ]]; then
        local why="load generator exit status $rc, no result"
        ((rc == 124)) && why="load generator stopped by timeout"
        failed_row "$round" "$mode" "$sc" "$name" "$workers" "$why (stderr in $log)"
        return
    fi
    { tag "$round" "$mode" "$sc" "$name" "$workers"; printf '"stopped":"%s","exit":%d,%s\n' \
        "$how" "$rc" "${out#\{}"; } >>"$raw"
    python3 - "$out" "$round" "$NET_ROUNDS" "$mode" "$sc" "$name" "$how" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
us = r.get("server_us_per_msg")
print("   round %s/%s  %-7s  %-8s  %-13s %9.0f msg/s  p99 %8.0f us  server %s us/msg  errors %d%s" % (
    sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], r["msgs_per_s"],
    r["p99_us"], "%.2f" % us if us is not None else "?", r["errors"],
    "" if sys.argv[7] == "sigterm" else "  (server " + sys.argv[7] + ")"))
EOF
}

# ---------------------------------------------------------------- rounds

t0=$SECONDS
n_runs=$((NET_ROUNDS * ${#scenarios[@]} * ${#modes[@]} * ${#servers[@]}))
say "networking: $NET_ROUNDS rounds x ${#scenarios[@]} scenarios x ${#modes[@]} modes x" \
    "${#servers[@]} servers = $n_runs runs of ${NET_SECS} s (~$((n_runs * (NET_SECS + 1) / 60 + 1)) min)"
note "servers: ${servers[*]}; modes: ${modes[*]}; cores: server $NET_SERVER_CPU," \
    "client $NET_CLIENT_CPU (pinned); RLIMIT_NOFILE $nofile"
for ((r = 1; r <= NET_ROUNDS; r++)); do
    for sc in "${scenarios[@]}"; do
        for mode in "${modes[@]}"; do
            for ((k = 0; k < ${#servers[@]}; k++)); do
                s=${servers[$(((k + r - 1) % ${#servers[@]}))]}
                [[ -n ${only_mode[$s]:-} && ${only_mode[$s]} != "$mode" ]] && continue
                run_one "$r" "$mode" "$sc" "$s"
            done
        done
    done
done

# Every server this script started must be gone.
left=()
ours=()
for s in "${servers[@]}"; do ours+=("$(readlink -f "${bin[$s]}")"); done
for pid in "${started[@]}"; do
    alive "$pid" || continue
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    for o in "${ours[@]}"; do [[ $exe == "$o" ]] && left+=("$pid") && break; done
done
if [[ ${#left[@]} -gt 0 ]]; then
    note "WARNING: servers still running after the networking rows: ${left[*]}"
else
    note "all ${#started[@]} servers started here have stopped"
fi
say "networking done in $((SECONDS - t0)) s"

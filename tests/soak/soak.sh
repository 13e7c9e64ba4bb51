#!/usr/bin/env bash
# The soak campaign: a real shmbusd and real client processes (shmbus-stream, shmbusctl) for
# minutes, or for seconds in CI. Not part of the ctest suite. Four parts:
#   churn       clients connect, open a channel and are killed with SIGKILL, 1,000 a minute,
#               while a survivor stream runs through the same channel: the daemon's RSS grows
#               by less than 1 MiB, its open descriptors come back to where they were, and the
#               survivors' stream is complete;
#   restarts    shmbusd killed with SIGKILL and stopped with SIGTERM, each time started again,
#               while a block channel carries >= 50,000 sequence-numbered messages a second:
#               0 lost, 0 duplicated, both endpoints listed again within 2 s of each start;
#   namespaces  a client in its own ipc, pid and mount namespaces (unshare) that sees only the
#               socket's directory: byte-exact streams both ways;
#   memory      shmbusd in a memory cgroup, OOM killer on: a channel larger than what is left
#               is refused with an error naming the channel and the bytes, nobody gets SIGBUS
#               or OOM-killed, and another channel keeps streaming.
# Each part prints its figures; docs/reliability.md records those of a long run.
#
# usage: tests/soak/soak.sh [--long] [--build DIR] [PART...]
#   (default: the short version, build/default, every part)
# A part that cannot run here (not root, no unshare, no usable memory cgroup) says SKIPPED
# and why; the closing line counts parts passed, failed and skipped, and the exit status is
# non-zero if any failed.
set -euo pipefail

source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
build="$source_dir/build/default"
long=0
parts=()
while [ $# -gt 0 ]; do
    case "$1" in
    --long) long=1; shift ;;
    --build) build="$(realpath "$2")"; shift 2 ;;
    churn | restarts | namespaces | memory) parts+=("$1"); shift ;;
    *) echo "usage: $0 [--long] [--build DIR] [churn|restarts|namespaces|memory ...]" >&2; exit 64 ;;
    esac
done
[ ${#parts[@]} -gt 0 ] || parts=(churn restarts namespaces memory)

if [ "$long" = 1 ]; then
    churn_cycles=10000 churn_per_minute=1000 restarts_each=20 stream_rate=60000
else
    churn_cycles=200 churn_per_minute=1000 restarts_each=2 stream_rate=60000
fi

shmbusd="$build/daemon/shmbusd"
stream="$build/tests/soak/shmbus-stream"
shmbusctl="$build/tools/shmbusctl/shmbusctl"
for bin in "$shmbusd" "$stream" "$shmbusctl"; do
    [ -x "$bin" ] || { echo "soak: $bin is missing: build the default preset first" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/shmbus-soak.XXXXXX")"
chmod 0755 "$work"
socket="$work/run/shmbusd.sock"
mkdir -p "$work/run"
chmod 0755 "$work/run"
daemon_pid=""
background=()
cgroup=""
cleanup() {
    for pid in "${background[@]}" $daemon_pid; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [ -z "$cgroup" ] || rmdir "$cgroup" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0 skipped=0
part_failed=""
say() { echo "soak: $*"; }
# problem MESSAGE: records a failure of the current part (and goes on).
problem() { say "$part: FAILED: $*"; part_failed=1; }

cp "$source_dir/tests/soak/stream.yaml" "$work/shmbusd.yaml"
mkdir -p "$work/conf.d"
cat >"$work/conf.d/churn.yaml" <<'YAML'
channels:
  - name: churn
    kind: broadcast
    slot_size: 64
    slot_count: 1024
    overflow: block
    max_subscribers: 64
YAML

start_daemon() { # [COMMAND PREFIX...]: starts shmbusd on $work, returns once it listens
    "$@" "$shmbusd" --config "$work/shmbusd.yaml" --socket "$socket" --state-dir "$work/run" \
        --log-level warning >>"$work/shmbusd.log" 2>&1 &
    daemon_pid=$!
    daemon_started="$(date +%s.%N)"
    wait_until 20 "shmbusd did not listen on $socket" "$shmbusctl" --socket "$socket" ping
}
stop_daemon() { # SIGNAL: and waits for it to exit
    kill -"$1" "$daemon_pid"
    local status=0
    { wait "$daemon_pid"; } 2>/dev/null || status=$? # no "Killed" line from bash

    daemon_pid=""
    last_daemon_status=$status
}
# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND, 20 times a second.
wait_until() {
    local seconds="$1" what="$2"
    shift 2
    local deadline=$(($(date +%s) + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            problem "after ${seconds}s: $what"
            return 1
        fi
        sleep 0.05
    done
}
ctl() { "$shmbusctl" --socket "$socket" "$@"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status"; }
fd_count() { find "/proc/$daemon_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
endpoints_listed() { # CHANNEL: both shmbus-stream endpoints in the daemon's tables
    [ "$(ctl --no-legend info "$1" | grep -c 'shmbus-stream')" -eq 2 ]
}

# start_stream NAME CHANNEL COUNT RATE [PUBLISHER...]: subscriber first, then the publisher
# (which waits for it); PUBLISHER is the shmbus-stream to run it with (for example, one in
# other namespaces).
start_stream() {
    local name="$1" channel="$2" count="$3" rate="$4"
    shift 4
    "$stream" --socket "$socket" sub "$channel" --count "$count" --ready "$work/$name.ready" \
        >"$work/$name.sub" 2>>"$work/$name.log" &
    stream_sub=$!
    background+=("$stream_sub")
    wait_until 20 "the subscriber of '$channel' did not open it: $(cat "$work/$name.sub")" \
        test -e "$work/$name.ready" || return 1
    [ $# -gt 0 ] || set -- "$stream"
    "$@" --socket "$socket" pub "$channel" --count "$count" --rate "$rate" \
        --subscribers 1 >"$work/$name.pub" 2>>"$work/$name.log" &
    stream_pub=$!
    background+=("$stream_pub")
}
finish_stream() { # NAME: sets stream_result to the subscriber's figures
    local pub_status=0 sub_status=0
    wait "$stream_pub" || pub_status=$?
    wait "$stream_sub" || sub_status=$?
    stream_result="$(cat "$work/$1.sub")"
    [ "$pub_status" = 0 ] || problem "the publisher of '$1' failed: $(cat "$work/$1.pub")"
    [ "$sub_status" = 0 ] || problem "the stream '$1' is not complete: $stream_result"
}

# ---- churn ----
part_churn() {
    local seconds=$((churn_cycles * 60 / churn_per_minute))
    start_daemon || return
    # The survivors' stream outlasts the churn by a few seconds, so that the end figures are
    # taken with the same clients connected as the start figures.
    start_stream survivors churn $(((seconds + 5) * 10000)) 10000 || return
    # Warm-up: the allocator's first arenas, the first dozens of connections.
    "$stream" --socket "$socket" churn churn --cycles 50 --per-minute 0 >/dev/null ||
        problem "the warm-up churn failed"
    local rss0 fds0
    rss0="$(rss_kib)" fds0="$(fd_count)"
    local churn_out
    churn_out="$("$stream" --socket "$socket" churn churn --cycles "$churn_cycles" \
        --per-minute "$churn_per_minute")" || problem "churn: $churn_out"
    # Every victim's connection closed: only the survivors (and this shmbusctl) are connected.
    wait_until 10 "the daemon still counts the killed clients" \
        sh -c "'$shmbusctl' --socket '$socket' --json status | grep -q '\"clients\": *3\\b'" || true
    local rss1 fds1
    rss1="$(rss_kib)" fds1="$(fd_count)"
    finish_stream survivors
    say "churn: $churn_out; daemon RSS ${rss0} KiB -> ${rss1} KiB ($((rss1 - rss0)) KiB), descriptors $fds0 -> $fds1; survivors: $stream_result"
    [ $((rss1 - rss0)) -lt 1024 ] || problem "the daemon's RSS grew by $((rss1 - rss0)) KiB (limit 1024)"
    [ "$fds1" -eq "$fds0" ] || problem "the daemon holds $fds1 descriptors, $fds0 before the churn"
    stop_daemon TERM
    [ "$last_daemon_status" = 0 ] || problem "shmbusd exited with status $last_daemon_status"
}

# ---- restarts ----
part_restarts() {
    local cycles=$((2 * restarts_each))
    start_daemon || return
    # Enough messages to outlast every restart (a start takes well under a second).
    start_stream restarts stream $(((cycles * 2 + 4) * stream_rate)) "$stream_rate" || return
    wait_until 10 "the stream's endpoints are not listed" endpoints_listed stream || return
    local worst=0 i signal
    for i in $(seq "$cycles"); do
        signal=KILL
        [ $((i % 2)) = 0 ] && signal=TERM
        stop_daemon "$signal"
        if [ "$signal" = TERM ] && [ "$last_daemon_status" != 0 ]; then
            problem "shmbusd exited with status $last_daemon_status on SIGTERM"
        fi
        start_daemon || return
        wait_until 10 "the endpoints were not listed again after start $i" endpoints_listed stream ||
            return
        local took
        took="$(awk -v now="$(date +%s.%N)" -v t0="$daemon_started" 'BEGIN { printf "%.2f", now - t0 }')"
        worst="$(awk -v a="$took" -v b="$worst" 'BEGIN { print (a > b ? a : b) }')"
        if awk -v t="$took" 'BEGIN { exit !(t > 2) }'; then
            problem "start $i (after SIG$signal): the endpoints were listed again only after ${took}s"
        fi
        sleep 0.5 # let the stream run between restarts: a pace, not a synchronisation
    done
    finish_stream restarts
    say "restarts: $restarts_each x SIGKILL + $restarts_each x SIGTERM; endpoints listed again within ${worst}s of a start at worst; $stream_result"
    local rate
    rate="$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' <<<"$stream_result")"
    [ "${rate:-0}" -ge 50000 ] || problem "the stream ran at ${rate:-0} messages/s, below 50,000"
    stop_daemon TERM
}

# ---- namespaces ----
part_namespaces() {
    if [ "$(id -u)" -ne 0 ]; then
        say "namespaces: SKIPPED: needs root (unshare of the mount namespace, bind mounts)"
        return 77
    fi
    if ! unshare --ipc --pid --mount --fork true 2>/dev/null; then
        say "namespaces: SKIPPED: unshare --ipc --pid --mount is not permitted here"
        return 77
    fi
    start_daemon || return
    # A root that holds the program, its libraries read-only, and the socket's directory:
    # nothing else of this machine (no /tmp, /home, /dev/shm, /run).
    local jail="$work/jail" lib
    mkdir -p "$jail" "$work/opt-copy"
    cp "$stream" "$work/opt-copy/"
    lib="$(ldd "$stream" | awk '/libshmbus\.so/ { print $3 }')"
    cp -L "$lib" "$work/opt-copy/"
    cat >"$work/enter.sh" <<SH
set -e
mount -t tmpfs -o mode=0755 jail "$jail"
mkdir -p "$jail/usr" "$jail/etc" "$jail/proc" "$jail/opt" "$jail/dev" "$jail$(dirname "$socket")"
for d in usr etc; do mount --rbind -o ro "/\$d" "$jail/\$d"; done
for l in bin sbin lib lib64; do [ -L "/\$l" ] && ln -s "usr/\$l" "$jail/\$l"; done
mount --bind "$work/opt-copy" "$jail/opt"
mount --bind "$(dirname "$socket")" "$jail$(dirname "$socket")"
mount -t proc proc "$jail/proc"
mount -t tmpfs dev "$jail/dev"
exec chroot "$jail" env LD_LIBRARY_PATH=/opt "\$@"
SH
    local inside=(unshare --ipc --pid --mount --fork --propagation private sh "$work/enter.sh")
    # What the jailed client sees: its own namespaces, and only the socket's directory.
    local view
    view="$("${inside[@]}" sh -c 'echo "pids: $(ls /proc | grep -c "^[0-9]")"
        readlink /proc/self/ns/ipc /proc/self/ns/pid /proc/self/ns/mnt
        for p in /home /root /var /run /dev/shm "$1"; do [ -e "$p" ] && echo "visible: $p"; done
        ls "$2"' sh "$work/shmbusd.yaml" "$(dirname "$socket")" 2>&1)" ||
        { problem "cannot enter the namespaces: $view"; return; }
    local host_ns
    host_ns="$(readlink /proc/self/ns/ipc /proc/self/ns/pid /proc/self/ns/mnt)"
    grep -q '^pids: [1-5]$' <<<"$view" || problem "the jailed client sees other processes: $view"
    ! grep -qxF -f <(echo "$host_ns") <<<"$view" || problem "the jailed client shares a namespace with the host: $view"
    ! grep -q '^visible: ' <<<"$view" || problem "the jailed client sees more than the socket's directory: $view"
    grep -qx "$(basename "$socket")" <<<"$view" || problem "the jailed client does not see the socket: $view"
    # Jailed publisher -> subscriber outside, then publisher outside -> jailed subscriber.
    local jailed_stream=("${inside[@]}" /opt/shmbus-stream --socket "$socket")
    start_stream ns-out stream 200000 50000 "${inside[@]}" /opt/shmbus-stream || return
    finish_stream ns-out
    local out_result="$stream_result"
    "${jailed_stream[@]}" sub stream --count 200000 >"$work/ns-in.sub" 2>>"$work/ns-in.log" &
    stream_sub=$!
    background+=("$stream_sub")
    wait_until 20 "the jailed subscriber did not attach" \
        sh -c "'$shmbusctl' --socket '$socket' --no-legend info stream | grep -q shmbus-stream" || return
    "$stream" --socket "$socket" pub stream --count 200000 --rate 50000 --subscribers 1 \
        >"$work/ns-in.pub" 2>>"$work/ns-in.log" &
    stream_pub=$!
    background+=("$stream_pub")
    finish_stream ns-in
    say "namespaces: own ipc, pid and mount namespaces, only $(dirname "$socket") visible; jailed publisher: $out_result; jailed subscriber: $stream_result"
    stop_daemon TERM
}

# ---- memory ----
part_memory() {
    if [ "$(id -u)" -ne 0 ]; then
        say "memory: SKIPPED: needs root (a memory cgroup of its own)"
        return 77
    fi
    # A memory cgroup of its own, the OOM killer left on as under a unit's MemoryMax=: the
    # daemon must refuse what does not fit before it charges a page, since at the limit the
    # kernel kills instead of failing fallocate(). cgroup v2 at the root of the hierarchy,
    # else a child of our own v1 memory cgroup.
    local limit=$((96 << 20)) peak_file v1_path
    if grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null && [ -w /sys/fs/cgroup ]; then
        cgroup="/sys/fs/cgroup/shmbus-soak-$$"
        mkdir "$cgroup"
        echo "$limit" >"$cgroup/memory.max"
        echo 0 >"$cgroup/memory.swap.max" 2>/dev/null || true
        peak_file="$cgroup/memory.peak"
    else
        v1_path="$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)"
        if [ -z "$v1_path" ] || [ ! -w "/sys/fs/cgroup/memory$v1_path" ]; then
            say "memory: SKIPPED: no writable memory cgroup (v2 at /sys/fs/cgroup with the memory controller, or v1)"
            return 77
        fi
        cgroup="/sys/fs/cgroup/memory$v1_path/shmbus-soak-$$"
        mkdir "$cgroup"
        echo "$limit" >"$cgroup/memory.limit_in_bytes"
        peak_file="$cgroup/memory.max_usage_in_bytes"
    fi
    # Runs as start_daemon's background job: joins the cgroup, then becomes the daemon.
    in_cgroup() { echo "$BASHPID" >"$cgroup/cgroup.procs" && exec "$@"; }
    start_daemon in_cgroup || return
    start_stream memory stream $((8 * 50000)) 50000 || return
    # A channel that fits, then one of 256 MiB: more than the cgroup has left.
    local fits huge
    fits="$("$stream" --socket "$socket" pub fits --create broadcast --size 65536 --slot-count 128 --count 1 2>&1)" ||
        problem "a 8 MiB channel was refused under a 96 MiB limit: $fits"
    huge="$("$stream" --socket "$socket" pub huge --create broadcast --size 524288 --slot-count 512 --count 1 2>&1)" &&
        problem "a 256 MiB channel was created under a 96 MiB limit"
    grep -q "'huge'" <<<"$huge" && grep -q "[0-9] bytes" <<<"$huge" ||
        problem "the refusal does not name the channel and the bytes: $huge"
    finish_stream memory
    kill -0 "$daemon_pid" 2>/dev/null || problem "shmbusd died (SIGBUS or the OOM killer?): $(tail -3 "$work/shmbusd.log")"
    local usage
    usage="$(cat "$peak_file" 2>/dev/null || echo 0)"
    stop_daemon TERM
    [ "$last_daemon_status" = 0 ] || problem "shmbusd exited with status $last_daemon_status"
    say "memory: limit $((limit >> 20)) MiB, peak $((usage >> 20)) MiB; refused: ${huge#error=}; other channel: $stream_result"
    rmdir "$cgroup" && cgroup=""
}

for part in "${parts[@]}"; do
    say "== $part ($([ "$long" = 1 ] && echo long || echo short))"
    part_failed=""
    status=0
    rm -f "$work/run/shmbusd.state" # each part starts a fresh daemon, with nothing to take back
    "part_$part" || status=$?
    # A part that gave up halfway leaves its processes: end them before the next part.
    for pid in "${background[@]}" $daemon_pid; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    background=() daemon_pid=""
    if [ -n "$part_failed" ]; then
        failed=$((failed + 1))
        echo "--- shmbusd log (last 10 lines):" && tail -10 "$work/shmbusd.log" || true
    elif [ "$status" = 77 ]; then
        skipped=$((skipped + 1))
    elif [ "$status" != 0 ]; then
        say "$part: FAILED (status $status)"
        failed=$((failed + 1))
    else
        say "$part: passed"
        passed=$((passed + 1))
    fi
    : >"$work/shmbusd.log"
done
echo "soak: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

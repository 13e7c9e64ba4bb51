#!/usr/bin/env bash
# The Debian packages under a real systemd: what only a service manager shows.
#
# systemd need not be PID 1 here: a Debian bookworm root (mmdebstrap) with the built packages
# installed boots in a container (systemd-nspawn --boot), where systemd is PID 1, and every
# check drives it from outside (nsenter into the container, systemctl). Checks, in order:
#   1. socket activation: the socket listens from boot, the service starts at the first client;
#   2. READY=1 (active only once ready) and STATUS= (clients, channels, segments);
#   3. the sandbox at run time: the seccomp filter and the file-system protections are in
#      force, every request a client or an operator makes still succeeds, and a bridge's
#      threads get their lower priority (setpriority) under the filter;
#   4. reload: a good drop-in adds a channel; a bad one keeps the running configuration;
#   5. restart and crash mid-stream: a broadcast channel (block policy) carries a sequence-
#      numbered stream through 2 x `systemctl restart` and 2 x SIGKILL: 0 lost, 0 duplicated,
#      and both endpoints listed again after each start;
#   6. the watchdog: a daemon that stops answering is killed and restarted;
#   7. logout with RemoveIPC=yes: a user's last session ends while that user's publisher
#      streams into a channel the user created; logind removes the user's IPC objects, and the
#      channel and the stream lose nothing;
#   8. the start rate limit: six restarts within ten seconds, by an operator or a crash loop,
#      leave the service running and the socket listening (docs/operations.md).
#
# usage: tests/systemd/test-systemd.sh --debs DIR [--work DIR] BUILD_DIR
#   --debs DIR   the built packages (packaging/build-deb.sh DIR)
#   --work DIR   where the container's root goes (default BUILD_DIR/systemd-container);
#                made with mmdebstrap when missing, reused (packages reinstalled) when present
#   BUILD_DIR    a default build, for tests/soak/shmbus-stream (the traffic)
# Needs root, systemd-nspawn (systemd-container), mmdebstrap, and Debian's package registry
# for the first run. Exits 77 after saying why when the machine cannot run it.
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
debs="" work=""
while [ $# -gt 1 ]; do
    case "$1" in
    --debs) debs="$(realpath "$2")"; shift 2 ;;
    --work) work="$(realpath -m "$2")"; shift 2 ;;
    *) break ;;
    esac
done
[ $# -eq 1 ] && [ -n "$debs" ] || {
    echo "usage: $0 --debs DIR [--work DIR] BUILD_DIR" >&2
    exit 64
}
build="$(realpath "$1")"
work="${work:-$build/systemd-container}"

skip() { echo "test-systemd: SKIPPED: $*" >&2; exit 77; }
fail() {
    echo "test-systemd: FAIL: $*" >&2
    if [ -n "${leader:-}" ]; then
        echo "--- journal of shmbusd (last 40 lines):" >&2
        in_ct journalctl --no-pager -b -n 40 -u shmbusd.service -u shmbusd.socket >&2 || true
    fi
    exit 1
}
step() { echo "== test-systemd: $*"; }
ok() { echo "ok - $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (it boots a container)"
for tool in systemd-nspawn mmdebstrap nsenter; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (packaging/install-deps.sh)"
done
stream_bin="$build/tests/soak/shmbus-stream"
[ -x "$stream_bin" ] || fail "$stream_bin is missing: build the default preset first"
shopt -s nullglob
packages=("$debs"/shmbusd_*.deb "$debs"/libshmbus0_*.deb)
[ ${#packages[@]} -eq 2 ] || fail "no shmbusd_*.deb and libshmbus0_*.deb in $debs"

root="$work/root"
bin_dir="$work/bin"
nspawn_pid="" leader=""
background=()
cleanup() {
    for pid in "${background[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true # systemd-nspawn powers the container off
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

in_ct() { nsenter -t "$leader" -a "$@"; }
prop() { in_ct systemctl show -P "$2" "$1"; }
# poll_until SECONDS CMD...: runs CMD every 0.1 s until it succeeds; fails after SECONDS.
poll_until() {
    local tries=$(($1 * 10))
    shift
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.1
    done
}
# wait_for SECONDS WHAT CMD...: poll_until, or the run fails saying WHAT. Where WHAT shows a
# state, call poll_until and build the message on failure instead, so that it shows the state
# at the timeout (not before the wait).
wait_for() {
    local seconds="$1" what="$2"
    shift 2
    poll_until "$seconds" "$@" || fail "after ${seconds}s: $what"
}
is_active() { [ "$(prop "$1" ActiveState)" = active ]; }
main_pid() { prop shmbusd.service MainPID; }
new_main_pid() { local p; p="$(main_pid)"; [ "$p" != 0 ] && [ "$p" != "$1" ] && is_active shmbusd.service; }
ctl() { in_ct shmbusctl "$@"; }
stream() { in_ct /opt/shmbus-test/shmbus-stream "$@"; }
# journal_has TEXT: shmbusd's journal holds TEXT (journald may write a line a moment later).
journal_has() { in_ct journalctl --no-pager -b -u shmbusd.service | grep -qF -- "$1"; }

# start_stream NAME CHANNEL COUNT RATE [PUB_ARGS...]: a publisher (which may create the channel)
# waits for its subscriber, then sends COUNT sequence-numbered messages at RATE a second (0: as
# fast as it can). PUBLISH_AS=user runs the publisher as that user, outside any session.
start_stream() {
    local name="$1" channel="$2" count="$3" rate="$4"
    shift 4
    local as=()
    [ -z "${PUBLISH_AS:-}" ] || as=(setpriv --reuid="$PUBLISH_AS" --regid="$PUBLISH_AS" --init-groups)
    in_ct rm -f "/tmp/$name.ready" # the container's /tmp is its own tmpfs
    in_ct "${as[@]}" /opt/shmbus-test/shmbus-stream pub "$channel" --count "$count" --rate "$rate" \
        --subscribers 1 --ready "/tmp/$name.ready" "$@" >"$work/$name.pub" 2>&1 &
    stream_pub=$!
    background+=("$stream_pub")
    poll_until 20 in_ct test -e "/tmp/$name.ready" ||
        fail "after 20s: the publisher of '$channel' did not open it: $(cat "$work/$name.pub")"
    stream sub "$channel" --count "$count" >"$work/$name.sub" 2>&1 &
    stream_sub=$!
    background+=("$stream_sub")
}
# finish_stream NAME: both ends must finish, the subscriber having seen every message once.
finish_stream() {
    wait "$stream_pub" || fail "the publisher of stream '$1' failed: $(cat "$work/$1.pub")"
    wait "$stream_sub" || fail "the subscriber of stream '$1' failed: $(cat "$work/$1.sub")"
    stream_result="$(grep received= "$work/$1.sub")"
}

# ---- the container ----
if [ ! -x "$root/lib/systemd/systemd" ]; then
    step "making a bookworm root with mmdebstrap (once per build tree)"
    rm -rf "$root"
    mkdir -p "$work"
    # libpam-systemd: logind sessions (the RemoveIPC check); the packages' own dependencies
    # come with them.
    mmdebstrap --quiet --variant=apt --include=systemd,systemd-sysv,dbus,libpam-systemd \
        bookworm "$root" || skip "mmdebstrap could not make a bookworm root (no package registry?)"
fi
step "installing ${packages[*]##*/}"
mkdir -p "$root/tmp/shmbus-debs"
cp "${packages[@]}" "$root/tmp/shmbus-debs/"
chroot "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -qq --no-install-recommends /tmp/shmbus-debs/*.deb >/dev/null 2>&1 ||
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -qq --no-install-recommends /tmp/shmbus-debs/*.deb)' ||
    fail "installing the packages in the container"
rm -rf "$root/tmp/shmbus-debs"
# A user to log in and out (RemoveIPC), allowed to reach the system socket and create channels.
chroot "$root" sh -c 'id alice >/dev/null 2>&1 || useradd --create-home --groups shmbus alice'
mkdir -p "$root/etc/shmbusd/conf.d"
rm -f "$root"/etc/shmbusd/conf.d/*.yaml
cp "$here/tests/soak/stream.yaml" "$root/etc/shmbusd/conf.d/10-stream.yaml"
cat >"$root/etc/shmbusd/conf.d/20-alice.yaml" <<'YAML'
dynamic_channels:
  users: [alice]
YAML
mkdir -p "$bin_dir"
cp "$stream_bin" "$bin_dir/"

step "booting it (systemd-nspawn --boot)"
systemd-nspawn -D "$root" --boot --register=no --keep-unit --console=passive \
    --bind-ro="$bin_dir:/opt/shmbus-test" >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1: the child of systemd-nspawn once it has become systemd.
find_leader() {
    leader="$(ps --ppid "$nspawn_pid" -o pid= | tr -d ' ')"
    [ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" = systemd ]
}
wait_for 60 "the container's systemd did not start (see $work/nspawn.log)" find_leader
booted() {
    state="$(in_ct systemctl is-system-running 2>/dev/null || true)"
    [ "$state" = running ] || [ "$state" = degraded ]
}
wait_for 120 "the container did not finish booting" booted
[ "$state" = running ] || fail "the container booted '$state': $(in_ct systemctl --failed --no-legend)"
ok "systemd $(in_ct systemctl --version | head -1 | cut -d' ' -f2) runs as the container's PID 1"

# ---- 1. socket activation ----
step "1. socket activation"
is_active shmbusd.socket || fail "shmbusd.socket is not listening after boot"
[ "$(prop shmbusd.service ActiveState)" = inactive ] ||
    fail "shmbusd.service runs before any client (it should start at the first)"
ctl status >/dev/null || fail "the first client (shmbusctl status) got no answer"
is_active shmbusd.service || fail "the first client did not start shmbusd.service"
ok "the socket listens from boot and the first client started the service"

# ---- 2. READY and STATUS ----
step "2. READY=1 and STATUS="
[ "$(prop shmbusd.service Type)" = notify ] || fail "Type= is not notify"
wait_for 30 "the daemon did not say it took the socket from systemd" \
    journal_has "using the listening socket passed by the service manager"
wait_for 5 "STATUS= never said how many channels there are" \
    sh -c "nsenter -t $leader -a systemctl show -P StatusText shmbusd.service | grep -q 'channels'"
ok "active after READY=1; STATUS='$(prop shmbusd.service StatusText)'"

# ---- 3. the sandbox at run time ----
step "3. the sandbox at run time"
pid="$(main_pid)" # in the container's pid namespace, like its /proc
proc_status="$(in_ct cat "/proc/$pid/status")"
grep -q '^Seccomp:[[:space:]]*2' <<<"$proc_status" || fail "no seccomp filter on shmbusd"
grep -q '^NoNewPrivs:[[:space:]]*1' <<<"$proc_status" || fail "NoNewPrivs is not set on shmbusd"
grep -q '^CapEff:[[:space:]]*0000000000000000' <<<"$proc_status" || fail "shmbusd has capabilities"
[ "$(in_ct stat -c %U "/proc/$pid")" = shmbus ] || fail "shmbusd does not run as user shmbus"
if in_ct nsenter -t "$pid" -m sh -c 'ls /home/alice' >/dev/null 2>&1; then
    fail "ProtectHome=: /home/alice is visible to shmbusd"
fi
if in_ct nsenter -t "$pid" -m sh -c 'touch /etc/shmbusd/x' 2>/dev/null; then
    fail "ProtectSystem=strict: /etc is writable for shmbusd"
fi
# Every request, under the filter: hello, list, info, clients, status, ping, reload, create,
# open (both roles), close, and descriptors passed both ways.
for request in status list "info stream" clients ping reload; do
    # shellcheck disable=SC2086 # the request is a command and its argument
    ctl $request >/dev/null || fail "shmbusctl $request failed under the sandbox"
done
start_stream sandbox sandbox 20000 0 --create broadcast
finish_stream sandbox
[ "$(prop shmbusd.service NRestarts)" = 0 ] || fail "shmbusd restarted during the requests"
ok "seccomp filter, no capabilities, /home hidden, /etc read-only; every request succeeded"

# setpriority under the filter: the unit allows it again after taking @resources away, so a
# bridge's threads run `nice` levels below the control loop (10 by default). A bridge that
# connects to a port nobody listens on keeps its thread, backing off, for as long as it is
# configured.
in_ct sh -c 'umask 077 && head -c 32 /dev/urandom >/etc/shmbusd/bridge-prio.key &&
    chown shmbus:shmbus /etc/shmbusd/bridge-prio.key'
cat >"$root/etc/shmbusd/conf.d/25-bridge-prio.yaml" <<'YAML'
bridges:
  - name: prio
    connect: tcp://127.0.0.1:9
    secret_file: /etc/shmbusd/bridge-prio.key
    import: [prio-check]
YAML
pid="$(main_pid)"
in_ct systemctl reload shmbusd.service || fail "systemctl reload failed"
# bridge_nice: the nice value (field 19 of its stat) of the daemon's thread named bridge:prio.
bridge_nice() {
    local task
    for task in $(in_ct sh -c "ls /proc/$pid/task"); do
        if [ "$(in_ct cat "/proc/$pid/task/$task/comm" 2>/dev/null)" = bridge:prio ]; then
            in_ct cat "/proc/$pid/task/$task/stat" | awk '{print $19}'
            return 0
        fi
    done
    return 1
}
bridge_at_nice() { [ "$(bridge_nice)" = "$1" ]; }
wait_for 10 "no thread bridge:prio at nice 10 in shmbusd: was setpriority refused?" \
    bridge_at_nice 10
journal_has "run at the daemon's priority" && fail "shmbusd logged that setpriority was refused"
rm -f "$root/etc/shmbusd/conf.d/25-bridge-prio.yaml"
in_ct rm -f /etc/shmbusd/bridge-prio.key
in_ct systemctl reload shmbusd.service
ok "a bridge's thread runs at nice 10 under the filter"

# ---- 4. reload ----
step "4. reload"
cat >"$root/etc/shmbusd/conf.d/20-reload.yaml" <<'YAML'
channels:
  - name: added-by-reload
    kind: queue
    slot_size: 128
    slot_count: 64
YAML
pid="$(main_pid)"
in_ct systemctl reload shmbusd.service || fail "systemctl reload failed"
wait_for 10 "the channel of a good drop-in did not appear after reload" \
    sh -c "nsenter -t $leader -a shmbusctl info added-by-reload"
printf 'channels:\n  - name: broken\n    slot_sise: 1KiB\n' >"$root/etc/shmbusd/conf.d/30-broken.yaml"
in_ct systemctl reload shmbusd.service || true # ExecReload= only sends SIGHUP
wait_for 10 "the journal does not name the bad drop-in's error" \
    journal_has "30-broken.yaml:3:5: error: unknown key 'slot_sise'"
is_active shmbusd.service || fail "a bad drop-in stopped the service"
[ "$(main_pid)" = "$pid" ] || fail "a reload restarted the daemon"
ctl info added-by-reload >/dev/null || fail "a bad drop-in lost the running configuration"
rm -f "$root/etc/shmbusd/conf.d/20-reload.yaml" "$root/etc/shmbusd/conf.d/30-broken.yaml"
in_ct systemctl reload shmbusd.service
ok "a good drop-in adds a channel; a bad one is refused, named in the journal, the old one kept"

# ---- 5. restart and crash mid-stream ----
step "5. restart and crash mid-stream: 300,000 messages at 50,000/s"
start_stream restarts stream 300000 50000
endpoints_listed() { # both ends of 'stream' in the daemon's tables again
    ctl info stream | grep -c 'shmbus-stream' | grep -qx 2
}
for how in restart kill restart kill; do
    wait_for 10 "the stream's endpoints are not listed" endpoints_listed
    pid="$(main_pid)"
    if [ "$how" = restart ]; then
        in_ct systemctl restart shmbusd.service
    else
        in_ct systemctl kill --signal=KILL shmbusd.service
    fi
    wait_for 10 "shmbusd did not come back after $how" new_main_pid "$pid"
    # The daemon got the segments back from the descriptor store, and the clients re-registered.
    wait_for 3 "the stream's endpoints were not listed again within 3 s of the start after $how" \
        endpoints_listed
done
finish_stream restarts
wait_for 10 "the daemon never took 'stream' back from the descriptor store" \
    journal_has "took back channel 'stream' from the descriptor store"
ok "2 x restart, 2 x SIGKILL mid-stream: $stream_result"

# ---- 6. the watchdog ----
step "6. the watchdog"
mkdir -p "$root/etc/systemd/system/shmbusd.service.d"
printf '[Service]\nWatchdogSec=2s\n' >"$root/etc/systemd/system/shmbusd.service.d/50-watchdog-test.conf"
in_ct systemctl daemon-reload
in_ct systemctl restart shmbusd.service
pid="$(main_pid)"
# Three watchdog intervals of an idle daemon: it pings in time.
sleep 6
[ "$(main_pid)" = "$pid" ] || fail "an idle daemon was restarted: does it send WATCHDOG=1?"
in_ct sh -c "kill -STOP $pid" # the shell's kill: the container has no procps
wait_for 20 "a stopped daemon was not restarted by the watchdog" new_main_pid "$pid"
wait_for 10 "the journal does not say 'Watchdog timeout'" journal_has "Watchdog timeout"
rm "$root/etc/systemd/system/shmbusd.service.d/50-watchdog-test.conf"
in_ct systemctl daemon-reload
in_ct systemctl restart shmbusd.service
ok "a daemon that pings lives; one that stops answering is killed and restarted"

# ---- 7. logout with RemoveIPC=yes ----
step "7. a user logs out (RemoveIPC=yes) while their publisher streams"
grep -Eq '^[[:space:]]*RemoveIPC=no' "$root/etc/systemd/logind.conf" &&
    fail "logind.conf of the container sets RemoveIPC=no"
# 20 s of stream: the login and the logout (user@.service starts and stops) happen inside it.
PUBLISH_AS=alice start_stream logout alice-stream 800000 40000 --create broadcast
# A login session of alice's that leaves a POSIX shared memory object behind: logind removes
# it at logout, which proves that RemoveIPC ran.
in_ct systemd-run --quiet --wait --uid=alice -p PAMName=login --unit=alice-login \
    sh -c 'echo x >/dev/shm/alice-marker; test -n "$XDG_SESSION_ID"' ||
    fail "alice could not log in (pam_systemd)"
wait_for 10 "logind did not remove alice's IPC objects at logout (RemoveIPC)" \
    sh -c "! nsenter -t $leader -a test -e /dev/shm/alice-marker"
kill -0 "$stream_pub" 2>/dev/null || fail "the stream ended before the logout was checked"
ctl info alice-stream >/dev/null || fail "alice's channel is gone after her logout"
finish_stream logout
ok "alice's IPC objects were removed at logout; her channel and stream lost nothing: $stream_result"

# ---- 8. the start rate limit ----
step "8. six restarts within ten seconds, then a crash loop"
for _ in 1 2 3 4 5 6; do
    in_ct systemctl restart shmbusd.service || fail "restart refused: $(prop shmbusd.service Result)"
done
for _ in 1 2 3 4 5 6; do
    pid="$(main_pid)"
    in_ct systemctl kill --signal=KILL shmbusd.service
    poll_until 15 new_main_pid "$pid" ||
        fail "after 15s: no restart after a crash ($(prop shmbusd.service Result))"
done
is_active shmbusd.socket || fail "shmbusd.socket is $(prop shmbusd.socket ActiveState) ($(prop shmbusd.socket Result))"
ctl status >/dev/null || fail "no client can connect after the restarts"
ok "12 starts in quick succession: the service runs and the socket listens"

step "all checks passed"

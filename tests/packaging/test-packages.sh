#!/usr/bin/env bash
# The Debian packages from install to purge, on this machine (as root; systemd need not run):
#   1. builds them (packaging/build-deb.sh) unless --debs DIR names built ones; lintian must
#      report no error;
#   2. installs them with apt-get; checks the user shmbus, the conffile (shmbusd
#      --check-config, and shmbusctl check-config through it), the units (verify), and that
#      python3 imports shmbus;
#   3. builds examples/consumer against the installed library, with find_package(shmbus) and
#      with pkg-config;
#   4. runs the installed /usr/sbin/shmbusd the way shmbusd.service does (its ExecStart= line,
#      as user shmbus, umask 0077, /run/shmbusd made as RuntimeDirectory= would) and has both
#      consumer builds and a python3 script exchange messages through it, and an ordinary user it adds to the group
#      shmbus (removed at the end) publish to and tail 'demo' with the shipped configuration;
#      then again socket-activated like shmbusd.socket (systemd-socket-activate); each time
#      stops it with SIGTERM, exit 0;
#   5. purges the packages and checks that nothing is left: no files of theirs, no
#      /etc/shmbusd, no /usr/include/shmbus, no shmbus in python3's dist-packages. The system
#      user shmbus stays (Debian does not remove system users: files it owned may remain).
#
# usage: tests/packaging/test-packages.sh [--debs DIR] [--worktree]
#        --worktree is passed to build-deb.sh (try uncommitted packaging changes).
# Changes this machine: installs then purges shmbusd, libshmbus0, libshmbus-dev,
# python3-shmbus.
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
debs=""
build_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --debs) debs="$2"; shift 2 ;;
    --worktree) build_args+=(--worktree); shift ;;
    *) echo "usage: $0 [--debs DIR] [--worktree]" >&2; exit 64 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "test-packages: run as root (installs and purges packages)" >&2
    exit 1
fi
if [ -e /run/shmbusd/shmbusd.sock ]; then
    echo "test-packages: /run/shmbusd/shmbusd.sock exists: a shmbusd runs here; not touching it" >&2
    exit 1
fi

packages=(shmbusd libshmbus0 libshmbus-dev python3-shmbus)
work="$(mktemp -d "${TMPDIR:-/tmp}/shmbus-pkgtest.XXXXXX")"
chmod 0755 "$work"
daemon_pid=""
made_run_dir=0
member=shmbus-pkgtest
made_member=0
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    if [ "$made_member" = 1 ]; then
        userdel "$member" 2>/dev/null || true
    fi
    if [ "$made_run_dir" = 1 ]; then
        rm -rf /run/shmbusd
    fi
    rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== test-packages: $*"; }
fail() { echo "test-packages: FAIL: $*" >&2; exit 1; }

# 1. Build and lint.
if [ -z "$debs" ]; then
    step "building the packages"
    debs="$work/debs"
    "$here/packaging/build-deb.sh" "${build_args[@]}" "$debs"
fi
debs="$(cd "$debs" && pwd)"
for p in "${packages[@]}"; do
    ls "$debs"/"${p}"_*.deb >/dev/null 2>&1 || fail "no ${p}_*.deb in $debs"
done
step "lintian (errors fail; warnings are listed in docs/operations.md)"
lintian --fail-on error "$debs"/*.changes ||
    fail "lintian reports errors"

# 2. Install.
step "installing"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$debs"/shmbusd_*.deb "$debs"/libshmbus0_*.deb "$debs"/libshmbus-dev_*.deb \
    "$debs"/python3-shmbus_*.deb
getent passwd shmbus >/dev/null || fail "the user shmbus was not created"
getent group shmbus >/dev/null || fail "the group shmbus was not created"
dpkg-query -W -f='${Conffiles}\n' shmbusd | grep '/etc/shmbusd/shmbusd.yaml' >/dev/null ||
    fail "/etc/shmbusd/shmbusd.yaml is not a conffile"
unit_dir=/lib/systemd/system
for f in /usr/sbin/shmbusd /etc/shmbusd/shmbusd.yaml "$unit_dir/shmbusd.service" \
    "$unit_dir/shmbusd.socket" /usr/lib/systemd/user/shmbusd.service \
    /usr/lib/sysusers.d/shmbus.conf /usr/include/shmbus/shmbus.hpp \
    /usr/include/shmbus/shmbus.h; do
    [ -e "$f" ] || fail "$f is not installed"
done
[ ! -e /usr/include/shmbus/src ] || fail "internal headers installed"
# The Python package imports with the system python3 (the one the package is built for,
# whatever python3 comes first on PATH), from outside any source tree, and
# links the installed libshmbus.so.0.
(cd / && /usr/bin/python3 -c "import shmbus; print('python3-shmbus', shmbus.__version__)") ||
    fail "python3 cannot import shmbus"
python_ext="$(find /usr/lib/python3/dist-packages/shmbus -name '_shmbus.*.so')"
[ -n "$python_ext" ] || fail "no _shmbus extension in /usr/lib/python3/dist-packages/shmbus"
ldd "$python_ext" | grep '/libshmbus\.so\.0' >/dev/null ||
    fail "$python_ext does not link the installed libshmbus.so.0"
/usr/sbin/shmbusd --check-config --config /etc/shmbusd/shmbusd.yaml
# shmbusctl check-config runs the installed shmbusd (../sbin/shmbusd from /usr/bin), even with
# a PATH that does not name /usr/sbin, as an ordinary user's does not.
env -u SHMBUSD PATH=/usr/bin:/bin /usr/bin/shmbusctl check-config /etc/shmbusd/shmbusd.yaml ||
    fail "shmbusctl check-config does not run the installed /usr/sbin/shmbusd"
(cd "$unit_dir" && systemd-analyze verify shmbusd.service shmbusd.socket) ||
    fail "systemd-analyze verify on the installed units"

# 3. Build the consumer example against the installed library, both ways.
step "building examples/consumer with find_package(shmbus)"
cmake -S "$here/examples/consumer" -B "$work/consumer-cmake" -G Ninja >/dev/null
cmake --build "$work/consumer-cmake"
consumer_cmake="$work/consumer-cmake/shmbus-consumer-example"
step "building examples/consumer with pkg-config"
mkdir -p "$work/consumer-make"
make -C "$here/examples/consumer" OUT="$work/consumer-make/shmbus-consumer-example"
consumer_make="$work/consumer-make/shmbus-consumer-example"
for c in "$consumer_cmake" "$consumer_make"; do
    ldd "$c" | grep '/libshmbus\.so\.0' >/dev/null || fail "$c does not link the installed libshmbus.so.0"
done

# 4. Run the installed daemon as the unit would.
read -r -a exec_start <<<"$(sed -n 's/^ExecStart=//p' "$unit_dir/shmbusd.service")"
[ "${exec_start[0]}" = /usr/sbin/shmbusd ] || fail "unexpected ExecStart: ${exec_start[*]}"
socket=/run/shmbusd/shmbusd.sock
make_runtime_dir() { # as RuntimeDirectory=shmbusd with RuntimeDirectoryMode=0755
    rm -rf /run/shmbusd
    install -d -o shmbus -g shmbus -m 0755 /run/shmbusd
    made_run_dir=1
}
# User=shmbus, Group=shmbus, no supplementary groups, UMask=0077. Run it with `&`: the
# background subshell execs, so that $! is the daemon's own pid.
as_shmbus() {
    umask 0077
    exec setpriv --reuid=shmbus --regid=shmbus --clear-groups --reset-env -- "$@"
}
wait_for_socket() {
    for _ in $(seq 200); do
        [ -S "$socket" ] && return 0
        kill -0 "$daemon_pid" 2>/dev/null || fail "shmbusd exited before it was ready"
        sleep 0.05
    done
    fail "$socket did not appear within 10 s"
}
stop_daemon() {
    kill -TERM "$daemon_pid"
    local rc=0
    wait "$daemon_pid" || rc=$?
    daemon_pid=""
    [ "$rc" -eq 0 ] || fail "shmbusd exited with $rc after SIGTERM"
}
exchange() {
    "$consumer_cmake" --socket "$socket" --count 2000
    "$consumer_make" --socket "$socket" --count 2000
    python_exchange
}
# The installed Python package publishes to 'demo' (shipped configuration) and reads it back,
# in place, through the daemon run as the unit would.
python_exchange() {
    (cd / && /usr/bin/python3 - "$socket" <<'PY') || fail "python3-shmbus cannot exchange through shmbusd"
import sys, shmbus
with shmbus.connect(sys.argv[1], name="test-packages") as c:
    sub = c.open_subscriber("demo")
    pub = c.open_publisher("demo")
    pub.send(b"from python3-shmbus", timeout=30.0)
    for msg in sub.receive(1, timeout=30.0):
        assert bytes(msg.data) == b"from python3-shmbus", bytes(msg.data)
PY
}
# An ordinary user in the group shmbus (as docs/operations.md tells an operator to add one),
# with the shipped /etc/shmbusd/shmbusd.yaml: tail 'demo' as that user, publish to it as that
# user, and the tail receives the message.
as_member() {
    setpriv --reuid="$member" --regid="$member" --init-groups --reset-env -- "$@"
}
member_pub_tail() {
    local out="$work/member-tail.out"
    as_member shmbusctl --socket "$socket" tail demo --count 1 --timeout 30 >"$out" 2>&1 &
    local tail_pid=$!
    local subscribed=0
    for _ in $(seq 200); do
        if as_member shmbusctl --socket "$socket" info demo --json | grep -q '"subscribers":1'; then
            subscribed=1
            break
        fi
        sleep 0.05
    done
    [ "$subscribed" = 1 ] || fail "the tail of $member on 'demo' did not subscribe: $(cat "$out")"
    as_member shmbusctl --socket "$socket" pub demo "hello from $member" ||
        fail "$member (group shmbus) cannot publish on 'demo'"
    wait "$tail_pid" || fail "the tail of $member on 'demo' failed: $(cat "$out")"
    grep -q "hello from $member" "$out" || fail "the tail of $member did not receive: $(cat "$out")"
}

step "adding the user $member to the group shmbus"
! getent passwd "$member" >/dev/null || fail "the user $member exists already"
useradd --no-create-home --shell /usr/sbin/nologin --groups shmbus "$member"
made_member=1

step "running ${exec_start[*]} as shmbus"
make_runtime_dir
as_shmbus "${exec_start[@]}" &
daemon_pid=$!
wait_for_socket
[ "$(stat -c %U "$socket")" = shmbus ] || fail "the socket is not owned by shmbus"
exchange
step "a member of the group shmbus publishes and tails 'demo' with the shipped configuration"
member_pub_tail
stop_daemon
[ ! -e "$socket" ] || fail "shmbusd left its socket behind"

step "running it socket-activated, as shmbusd.socket would"
make_runtime_dir
as_shmbus systemd-socket-activate --seqpacket --listen="$socket" "${exec_start[@]}" &
daemon_pid=$!
wait_for_socket
exchange
stop_daemon

# 5. Purge and look for leftovers.
step "purging"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${packages[@]}"
rm -rf /run/shmbusd
made_run_dir=0
for p in "${packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -v 'not-installed' >/dev/null; then
        fail "$p is still known to dpkg: $(dpkg-query -W -f='${Status}' "$p")"
    fi
done
for f in /usr/sbin/shmbusd /etc/shmbusd /usr/include/shmbus /usr/lib/python3/dist-packages/shmbus \
    "$unit_dir/shmbusd.service" \
    "$unit_dir/shmbusd.socket" /usr/lib/systemd/user/shmbusd.service \
    /usr/lib/sysusers.d/shmbus.conf /etc/systemd/system/sockets.target.wants/shmbusd.socket; do
    [ ! -e "$f" ] || fail "$f is left after purge"
done
leftovers="$(find /usr/lib /usr/share /etc /var/lib/dpkg/info \
    \( -name 'libshmbus*' -o -name 'shmbus*' -o -path '*/cmake/shmbus' \) 2>/dev/null || true)"
[ -z "$leftovers" ] || fail "left after purge:
$leftovers"
if getent passwd shmbus >/dev/null; then
    echo "test-packages: the system user shmbus remains after purge (Debian keeps system users)"
fi

step "ok"

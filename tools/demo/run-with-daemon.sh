#!/usr/bin/env bash
# Runs the shmbus demo through the broker: starts shmbusd as the invoking user on the shipped
# configuration (config/shmbusd.yaml, which defines the channel 'demo'), with its socket and
# state in a private temporary directory; runs shmbus-demo --via-daemon, whose publisher and
# subscriber processes each connect to shmbusd and open 'demo' by name; then stops the daemon
# with SIGTERM and checks that it exited cleanly and removed its socket.
#
# usage: tools/demo/run-with-daemon.sh [BUILD_DIR] [shmbus-demo options...]
#        BUILD_DIR defaults to build/default. No root needed.
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$here/build/default}"
[ $# -gt 0 ] && shift
shmbusd="$build/daemon/shmbusd"
demo="$build/tools/demo/shmbus-demo"
for bin in "$shmbusd" "$demo"; do
    if [ ! -x "$bin" ]; then
        echo "run-with-daemon: $bin is missing; build first (cmake --build --preset default)" >&2
        exit 1
    fi
done

runtime="$(mktemp -d "${TMPDIR:-/tmp}/shmbus-demo.XXXXXX")"
chmod 0700 "$runtime"
socket="$runtime/shmbusd.sock"
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    rm -rf "$runtime"
}
trap cleanup EXIT

"$shmbusd" --check-config --config "$here/config/shmbusd.yaml"
"$shmbusd" --config "$here/config/shmbusd.yaml" --socket "$socket" --state-dir "$runtime" &
daemon_pid=$!

# shmbusd creates the configured channels first and then binds and listens: once the socket
# file exists and accepts a connection, the channels are there. Wait at most 10 s.
for _ in $(seq 200); do
    if [ -S "$socket" ]; then
        break
    fi
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        echo "run-with-daemon: shmbusd exited before it was ready" >&2
        exit 1
    fi
    sleep 0.05
done
if [ ! -S "$socket" ]; then
    echo "run-with-daemon: shmbusd did not create $socket within 10 s" >&2
    exit 1
fi

status=0
"$demo" --via-daemon --socket "$socket" "$@" || status=$?

kill -TERM "$daemon_pid"
daemon_status=0
wait "$daemon_pid" || daemon_status=$?
daemon_pid=""
if [ "$daemon_status" -ne 0 ]; then
    echo "run-with-daemon: shmbusd exited with status $daemon_status" >&2
    exit 1
fi
if [ -e "$socket" ]; then
    echo "run-with-daemon: shmbusd left its socket behind" >&2
    exit 1
fi
echo "run-with-daemon: shmbusd stopped cleanly"
exit "$status"

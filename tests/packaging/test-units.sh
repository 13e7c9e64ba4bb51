#!/usr/bin/env bash
# Checks the systemd units of systemd/: `systemd-analyze verify` on the system and the user
# units, and `systemd-analyze security --offline=true` on the system service, whose exposure
# must not exceed 3.0 (docs/operations.md, "Hardening").
#
# verify insists that ExecStart's binary exists. So that this runs before anything is
# installed, the units are checked in a temporary copy whose /usr/sbin/shmbusd points at a
# built shmbusd (or at /usr/sbin/shmbusd when it is installed). systemd need not be PID 1.
#
# usage: tests/packaging/test-units.sh [SHMBUSD]   (default: build/default/daemon/shmbusd,
#        else /usr/sbin/shmbusd)
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
max_exposure=3.0
shmbusd="${1:-}"
if [ -z "$shmbusd" ]; then
    for candidate in "$here/build/default/daemon/shmbusd" /usr/sbin/shmbusd; do
        if [ -x "$candidate" ]; then
            shmbusd="$candidate"
            break
        fi
    done
fi
if [ -z "$shmbusd" ] || [ ! -x "$shmbusd" ]; then
    echo "test-units: no shmbusd binary; build first or pass its path" >&2
    exit 1
fi
shmbusd="$(cd "$(dirname "$shmbusd")" && pwd)/$(basename "$shmbusd")"
for tool in systemd-analyze; do
    command -v "$tool" >/dev/null || { echo "test-units: $tool is missing (package systemd)" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/shmbus-units.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/system" "$work/user" "$work/runtime"
chmod 0700 "$work/runtime"
cp "$here"/systemd/shmbusd.service "$here"/systemd/shmbusd.socket "$work/system/"
cp "$here"/systemd/user/shmbusd.service "$here"/systemd/user/shmbusd.socket "$work/user/"
sed -i "s#/usr/sbin/shmbusd#$shmbusd#g" "$work/system/shmbusd.service" "$work/user/shmbusd.service"

failed=0
check() {
    local what="$1"
    shift
    if out="$("$@" 2>&1)" && [ -z "$out" ]; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        echo "$out" | sed 's/^/    /'
        failed=1
    fi
}

# Relative paths make verify load the copies, not units installed on this machine.
cd "$work/system"
check "systemd-analyze verify (system units)" \
    systemd-analyze verify ./shmbusd.service ./shmbusd.socket
cd "$work/user"
# A user manager needs a runtime directory to resolve %t.
check "systemd-analyze --user verify (user units)" \
    env XDG_RUNTIME_DIR="$work/runtime" systemd-analyze --user verify ./shmbusd.service ./shmbusd.socket

cd "$work/system"
report="$(systemd-analyze security --offline=true --no-pager ./shmbusd.service 2>&1)" || true
exposure="$(printf '%s\n' "$report" |
    sed -n 's/.*Overall exposure level for shmbusd\.service: \([0-9][0-9.]*\).*/\1/p')"
if [ -z "$exposure" ]; then
    echo "FAIL: no exposure figure in systemd-analyze security's report:"
    printf '%s\n' "$report" | sed 's/^/    /'
    failed=1
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
    echo "ok: security exposure of shmbusd.service is $exposure (at most $max_exposure)"
else
    echo "FAIL: security exposure of shmbusd.service is $exposure (more than $max_exposure):"
    printf '%s\n' "$report" | grep '✗' | sed 's/^/    /'
    failed=1
fi

exit "$failed"

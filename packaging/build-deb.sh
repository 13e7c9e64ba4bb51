#!/usr/bin/env bash
# Builds the Debian packages shmbusd, libshmbus0, libshmbus-dev and python3-shmbus (binary
# only, unsigned).
#
# Works on a temporary copy of the tree: the committed files of HEAD (git archive), with
# packaging/debian copied to ./debian, so nothing is written into the repository. With
# --worktree, the tracked files are taken from the working tree instead (uncommitted changes
# included), plus untracked files under packaging/ and systemd/: a packaging change can be
# tried before it is committed, while other untracked work stays out.
#
# usage: packaging/build-deb.sh [--worktree] [OUTPUT_DIR]   (default: build/deb)
# Env: DEB_BUILD_OPTIONS (default "parallel=2": the unit tests run, as in a plain
# dpkg-buildpackage), SHMBUS_DEB_KEEP=1 keeps the copy.
# Needs the build dependencies of packaging/debian/control, dpkg-dev, debhelper, fakeroot
# (packaging/install-deps.sh installs them all).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
source_mode=head
if [ "${1:-}" = "--worktree" ]; then
    source_mode=worktree
    shift
fi
out="${1:-$here/build/deb}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

work="$(mktemp -d "${TMPDIR:-/tmp}/shmbus-deb.XXXXXX")"
cleanup() {
    if [ "${SHMBUS_DEB_KEEP:-0}" = 1 ]; then
        echo "build-deb: kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

tree="$work/shmbus"
mkdir -p "$tree"
if [ "$source_mode" = head ]; then
    git -C "$here" archive --format=tar HEAD | tar -x -C "$tree"
else
    (cd "$here" && {
        git ls-files -z
        git ls-files -z --others --exclude-standard -- packaging systemd
    } | xargs -0 tar -c --no-recursion -f -) | tar -x -C "$tree"
fi
rm -rf "$tree/debian"
cp -r "$tree/packaging/debian" "$tree/debian"

export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=2}"
(cd "$tree" && dpkg-buildpackage -us -uc -b)

rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
cp "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out/"
echo "build-deb: packages in $out:"
ls -1 "$out"/*.deb

#!/usr/bin/env bash
# The ABI of libshmbus.so.0 against the last release: builds the library of the newest tag
# v* of this repository and the library of the current checkout (or takes one built
# already), and compares them with abidiff (Debian: abigail-tools). Symbols added since are
# fine (a later release adds functions under a new version node: client-lib/libshmbus.map);
# a symbol removed, or a function or variable whose type, or a struct whose layout, changed
# fails the check, with abidiff's report naming them.
#
# usage: tests/packaging/abi-check.sh [--base REF] [--current LIB] [--keep]
#   --base REF     compare with REF instead of the newest tag v* (any commit, to try it)
#   --current LIB  the current libshmbus.so.0 to check (built with debug information, e.g.
#                  build/default/client-lib/libshmbus.so.0); default: built here from the
#                  checkout's working tree
#   --keep         leave the temporary build directory, and say where it is
# Exit status: 0 compatible; 1 an incompatible change (or a build failed); 77 skipped: no
# tag v* to compare with (said on stdout), as CI counts a test that cannot run here.
# Changes nothing outside a temporary directory: the old sources come from `git archive`.
set -euo pipefail

here="$(cd "$(dirname "$0")/../.." && pwd)"
base=""
current=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
    --base) base="$2"; shift 2 ;;
    --current) current="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--base REF] [--current LIB] [--keep]" >&2; exit 64 ;;
    esac
done

if [ -z "$base" ]; then
    base="$(git -C "$here" tag --list 'v*' --sort=-version:refname | head -n 1)"
    if [ -z "$base" ]; then
        echo "abi-check: SKIPPED: no release tag v* in this repository, so no earlier ABI to" \
            "compare libshmbus.so.0 with (the first release tag makes this check run)"
        exit 77
    fi
fi
if ! base_commit="$(git -C "$here" rev-parse --verify --quiet "$base^{commit}")"; then
    echo "abi-check: '$base' is not a commit of this repository" >&2
    exit 1
fi
for tool in abidiff cmake ninja; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "abi-check: $tool not found (packaging/install-deps.sh installs it;" \
            "abidiff is in abigail-tools)" >&2
        exit 1
    fi
done
if [ -n "$current" ] && [ ! -f "$current" ]; then
    echo "abi-check: --current $current: no such file" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/shmbus-abi.XXXXXX")"
if [ "$keep" = 1 ]; then
    trap 'echo "abi-check: kept $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi

# Builds the shared library of the sources in $1 into $2; prints the library's path.
build_library() {
    local src="$1" out="$2"
    if ! cmake -S "$src" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSHMBUS_WERROR=OFF -DSHMBUS_BUILD_TOOLS=OFF >"$out.log" 2>&1 ||
        ! cmake --build "$out" --target shmbus >>"$out.log" 2>&1; then
        echo "abi-check: building the library of $src failed; the end of $out.log:" >&2
        tail -n 30 "$out.log" >&2
        return 1
    fi
    realpath "$out/client-lib/libshmbus.so.0"
}

echo "abi-check: the ABI of $base ($(git -C "$here" rev-parse --short "$base_commit"))"
mkdir -p "$work/old"
git -C "$here" archive "$base_commit" | tar -x -C "$work/old"
old_lib="$(build_library "$work/old" "$work/old-build")"
old_headers="$work/old/client-lib/include"

if [ -z "$current" ]; then
    echo "abi-check: building the current library from $here"
    mkdir -p "$work/new"
    # The working tree as it is, uncommitted changes included, without build trees.
    tar -C "$here" --exclude=./build --exclude=./.git -cf - . | tar -x -C "$work/new"
    current="$(build_library "$work/new" "$work/new-build")"
    new_headers="$work/new/client-lib/include"
else
    new_headers="$here/client-lib/include"
fi

# --no-added-syms: additions are what a new release may bring; what remains of the report
# is removed or changed. --headers-dir*: only types of the public headers count (the
# library's internal types are not its ABI).
set +e
abidiff --no-added-syms --headers-dir1 "$old_headers" --headers-dir2 "$new_headers" \
    "$old_lib" "$current" >"$work/report.txt" 2>&1
status=$?
set -e
cat "$work/report.txt"
# abidiff's status is a bit field: 1 error, 2 usage error, 4 an ABI change, 8 an
# incompatible one. With added symbols left out, any change is one to fail on.
if [ $((status & 3)) -ne 0 ]; then
    echo "abi-check: abidiff could not compare the libraries (status $status)" >&2
    exit 1
fi
if [ $((status & 12)) -ne 0 ]; then
    echo "abi-check: FAILED: libshmbus.so.0 removed or changed symbols since $base (above)"
    exit 1
fi
echo "abi-check: OK: every symbol of $base is still there, unchanged"

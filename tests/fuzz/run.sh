#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for SECONDS each, one after the other, and fails
# on the first crash, leak, sanitizer report, timeout (an input taking over 10 s) or memory
# blow-up (over 2 GiB). What a run finds stays in the build tree: the growing corpus in
# BUILD/fuzz-corpus/<target>/ (the repository's seeds are read, never written) and a failing
# input in BUILD/fuzz-artifacts/, named in the message with the command that replays it.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR] [TARGET...]
#   (defaults: 60, build/fuzz, every target)
#
# Extra libFuzzer flags come from FUZZ_FLAGS (for example FUZZ_FLAGS="-jobs=2 -workers=2").
set -euo pipefail

source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-60}"
build="$(realpath -m "${2:-$source_dir/build/fuzz}")"
shift $(($# > 2 ? 2 : $#))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(fuzz_wire fuzz_config fuzz_segment fuzz_bridge_frame)
    # Built only where libnats is found (the NATS bridges are).
    if [ -x "$build/tests/fuzz/fuzz_nats_headers" ]; then
        targets+=(fuzz_nats_headers)
    else
        echo "fuzz: fuzz_nats_headers not built (no libnats): not run"
    fi
fi

# The repository's seeds of each target; fuzz_config also reads the shipped configuration.
seed_dirs() {
    echo "$source_dir/tests/fuzz/corpus/$1"
    if [ "$1" = fuzz_config ]; then
        echo "$source_dir/config"
        echo "$source_dir/config/examples"
    fi
}

failed=()
for target in "${targets[@]}"; do
    binary="$build/tests/fuzz/$target"
    if [ ! -x "$binary" ]; then
        echo "fuzz: $binary is missing: build the fuzz preset first" \
             "(cmake --preset fuzz && cmake --build --preset fuzz)" >&2
        exit 2
    fi
    corpus="$build/fuzz-corpus/$target"
    artifacts="$build/fuzz-artifacts/$target/"
    mkdir -p "$corpus" "$artifacts"
    mapfile -t seeds < <(seed_dirs "$target")
    log="$build/fuzz-artifacts/$target.log"
    echo "== fuzz: $target for ${seconds}s (corpus $corpus, log $log)"
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    if "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts" ${FUZZ_FLAGS:-} \
        "$corpus" "${seeds[@]}" >"$log" 2>&1; then
        grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|Done [0-9]+ runs)' "$log" || true
    else
        status=$?
        echo "fuzz: $target FAILED (exit $status); its report:" >&2
        grep -E -A40 '^==[0-9]+==|SUMMARY|^(INFO|MS): |Test unit written' "$log" | tail -60 >&2 || true
        for input in "$artifacts"*; do
            [ -f "$input" ] && echo "fuzz: replay with: $binary $input" >&2
        done
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash, leak or report"

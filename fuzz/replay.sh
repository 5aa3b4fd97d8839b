#!/usr/bin/env bash
# Replay every input of a target's corpus through the fuzz binary and print the slowest
# (artifacts are findings: replay those one by one, see docs/fuzzing.md).
# Usage: fuzz/replay.sh <target> [how-many]. Build first
# (`cargo +nightly fuzz build <target>`); times include the sanitizer's overhead.
#
# On a shared machine one run is noisy: pass 1 runs every input 5 times (each batch after an
# empty warm-up input, so one-time set-up such as compiling the redactor's patterns is not
# charged to a real input); pass 2 re-times the `how-many` slowest of pass 1 alone, 20 runs
# each. Both print the mean time of one run; the first line of pass 2 is the slowest input.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
top=${2:-20}
bin=target/x86_64-unknown-linux-gnu/release/$target
warm=$(mktemp)
trap 'rm -f "$warm"' EXIT
executed() { sed -n 's/^Executed \(.*\) in \([0-9]*\) ms$/\2 \1/p' | grep -v " $warm\$" || true; }
pass1=$(find "corpus/$target" -type f -print0 |
    xargs -0 -n 500 sh -c 'exec "$0" -runs=5 -timeout=2 -rss_limit_mb=1024 "$@"' "$bin" "$warm" 2>&1 |
    executed | sort -n -r)
echo "$(echo "$pass1" | grep -c .) inputs replayed 5 times; slowest: \
$(echo "$pass1" | head -1 | awk '{printf "%.1f", $1 / 5}') ms per run"
echo "$pass1" | head -"$top" | while read -r _ input; do
    "$bin" -runs=20 -timeout=2 -rss_limit_mb=1024 "$warm" "$input" 2>&1 | executed |
        awk '{printf "%.1f ms per run  %s\n", $1 / 20, $2}'
done | sort -n -r

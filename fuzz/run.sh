#!/usr/bin/env bash
# One fuzzing session for one target, the way docs/fuzzing.md reports it: run for SECONDS
# (default 600) on one core at low priority, minimize the corpus, replay it with a timer.
# Usage: fuzz/run.sh <target> [seconds]. Logs go to fuzz/logs/<target>.log (not committed).
set -uo pipefail
cd "$(dirname "$0")"
target=$1
seconds=${2:-600}
mkdir -p logs "corpus/$target" "artifacts/$target"
echo "== $target: $(date -u +%FT%TZ), ${seconds}s" > "logs/$target.log"
nice -n 10 cargo +nightly fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=2 -rss_limit_mb=1024 \
    -print_final_stats=1 >> "logs/$target.log" 2>&1
echo "== exit $?" >> "logs/$target.log"
nice -n 10 cargo +nightly fuzz cmin "$target" "corpus/$target" -- -rss_limit_mb=1024 -timeout=2 \
    >> "logs/$target.log" 2>&1
echo "== replay" >> "logs/$target.log"
nice -n 10 ./replay.sh "$target" >> "logs/$target.log" 2>&1
echo "== done $(date -u +%FT%TZ)" >> "logs/$target.log"

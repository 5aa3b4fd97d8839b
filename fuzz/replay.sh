#!/usr/bin/env bash
# Replay every input of a target's corpus (and its artifacts) once through the fuzz binary and
# print the slowest inputs. Usage: fuzz/replay.sh <target> [how-many]. Build first
# (`cargo +nightly fuzz build <target>`); times include the sanitizer's overhead.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
top=${2:-5}
bin=target/x86_64-unknown-linux-gnu/release/$target
dirs=("corpus/$target")
[ -d "artifacts/$target" ] && dirs+=("artifacts/$target")
find "${dirs[@]}" -type f -print0 |
    xargs -0 -n 500 "$bin" -runs=1 -timeout=2 -rss_limit_mb=1024 2>&1 |
    sed -n 's/^Executed \(.*\) in \([0-9]*\) ms$/\2 \1/p' |
    sort -n -r | awk -v top="$top" '{n++; if (n <= top) print $1 " ms  " $2} END {print n " inputs replayed"}'

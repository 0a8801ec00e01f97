#!/usr/bin/env bash
# Runs each fuzz target for a bounded time and prints the executions it reached.
#   bash tests/fuzz/run.sh            # 60 s per target
#   SECONDS_PER_TARGET=10 bash tests/fuzz/run.sh
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${SECONDS_PER_TARGET:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in request signature config build_log; do
  corpus=tests/fuzz/corpus/$target
  mkdir -p "$corpus"
  [ "$target" = request ] && cp -n tests/fixtures/*.json "$corpus"/ 2>/dev/null || true
  [ "$target" = build_log ] && cp -n tests/fixtures/failures/*.log "$corpus"/ 2>/dev/null || true
  log=$(mktemp)
  if ! cargo fuzz run --fuzz-dir tests/fuzz "$target" "$corpus" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $target FOUND A CRASH (artifact in tests/fuzz/artifacts/$target)"
    exit 1
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 || true)
  echo "fuzz: $target: ${runs:-?} in ${secs}s, no crash"
  rm -f "$log"
done

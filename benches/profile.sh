#!/usr/bin/env bash
# Instruction counts per call, by function, for cases of benches/overhead.rs (current-thread
# runtime), under valgrind's callgrind: exact and repeatable whatever else the machine does.
# Usage: benches/profile.sh ours_breaker_count [ours_full_stack ...]
# Works for the `ours_*` and `proto_*` cases (the iteration count is read from the calls into
# the case's own future). Needs valgrind; builds the bench first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$ROOT/target/bench}"
cd "$ROOT"
cargo bench -p resilient-benches --bench overhead --no-run -q 2>/dev/null
bin=$(find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -name 'overhead-*' ! -name '*.d' \
  -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2)
out="$CARGO_TARGET_DIR/profile"
mkdir -p "$out"
# `grep -m1` and `head` close their pipes early; that is not a failure.
set +o pipefail

for case in "$@"; do
  file="$out/callgrind.$case"
  valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" --bench --profile-time 1 \
    "current_thread/$case\$" > "$out/$case.log" 2>&1
  # Iterations: the calls that the measurement loop (the spawned task's future, a closure
  # of `cases`) makes into the case's future.
  iters=$(callgrind_annotate --tree=caller "$file" 2>/dev/null \
    | grep -m1 -E '< .*cases::\{\{closure\}\}::\{\{closure\}\}::\{\{closure\}\}::\{\{closure\}\} \(' \
    | sed -E 's/.*\(([0-9,]+)x\).*/\1/' | tr -d ,)
  total=$(callgrind_annotate "$file" 2>/dev/null | grep 'PROGRAM TOTALS' | awk '{print $1}' | tr -d ,)
  echo "== $case: $iters calls, $((total / iters)) instructions per call in all"
  callgrind_annotate "$file" 2>/dev/null | sed -n '/file:function/,$p' | grep -E '^ *[0-9,]+ \(' \
    | head -n 14 | sed -E 's/\( *[0-9.]+%\)//; s/ \[.*//; s/\?\?\?://; s/^ *//' \
    | while read -r ir fn; do
        n=${ir//,/}
        per=$(echo "scale=1; $n / $iters" | bc)
        [[ "$per" == "0" || "$per" == .* ]] && continue
        printf '%8s  %s\n' "$per" "$fn"
      done
done

#!/usr/bin/env bash
# Instruction counts of parsing and planning at 10k, 50k and 100k declared
# users (prune on), and their growth. Counts, unlike times, do not depend on
# what else the machine is doing. Needs valgrind; takes a few minutes.
#
#   benches/callgrind.sh            # default sizes
#   benches/callgrind.sh 20000      # one size
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt install valgrind)" >&2; exit 1; }
cargo bench --bench plan --no-run --quiet 2>/dev/null
bin=$(ls -t target/release/deps/plan-* | grep -v '\.d$' | head -n1)
sizes=("${@:-10000 50000 100000}")
read -r -a sizes <<<"${sizes[*]}"

count() { # phase size -> instructions
  PLAN_BENCH_ONLY=$1 PLAN_BENCH_SIZES=$2 valgrind --tool=callgrind \
    --callgrind-out-file=/dev/null "$bin" 2>&1 | awk '/refs:/ { gsub(",", "", $4); print $4 }'
}

printf '%8s %16s %7s %16s %7s\n' users "parse (instr)" "×" "plan (instr)" "×"
prev_parse=0 prev_plan=0
for n in "${sizes[@]}"; do
  setup=$(count setup "$n"); load=$(count load "$n"); plan=$(count plan "$n")
  parse=$((load - setup)); planning=$((plan - load))
  rp=""; rq=""
  if [ "$prev_parse" -gt 0 ]; then
    rp=$(awk -v a="$parse" -v b="$prev_parse" 'BEGIN { printf "%.2f", a / b }')
    rq=$(awk -v a="$planning" -v b="$prev_plan" 'BEGIN { printf "%.2f", a / b }')
  fi
  printf '%8s %16s %7s %16s %7s\n' "$n" "$parse" "$rp" "$planning" "$rq"
  prev_parse=$parse prev_plan=$planning
done

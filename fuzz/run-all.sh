#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), with its seeds and
# dictionary, and prints one line per target. New corpus entries go to
# corpus/<target>/, crashing inputs to artifacts/<target>/ (both ignored by git).
#   fuzz/run-all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O || exit 1
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "logs"
  dirs=("corpus/$t")
  [ -d "seeds/$t" ] && dirs+=("seeds/$t")
  extra=()
  [ -f "dict/$t.dict" ] && extra+=("-dict=dict/$t.dict")
  if cargo +nightly fuzz run -O "$t" "${dirs[@]}" -- -max_total_time="$secs" -max_len=4096 "${extra[@]}" \
    >"logs/$t.log" 2>&1; then
    echo "$t: ok, $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "logs/$t.log" | tail -1)"
  else
    failed=1
    echo "$t: FAILED, see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    grep -m1 -A2 "panicked at" "logs/$t.log"
  fi
done
exit $failed

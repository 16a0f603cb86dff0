#!/usr/bin/env bash
# Runs every wire-format fuzz target for a bounded time (CI-friendly).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s, all five
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Each corpus is seeded from docs/vectors (valid and invalid vectors); a
# crash leaves its input in fuzz/artifacts/TARGET/ and fails the script.
# On stable, `cargo test -p shared --test wire_fuzz` runs the same
# properties over deterministic mutations instead.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record packet snapshot delta qr)

seed() {
  local target=$1; shift
  mkdir -p "corpus/$target"
  for pattern in "$@"; do
    for file in ../docs/vectors/$pattern ../docs/vectors/invalid/$pattern; do
      case $file in *.error|*'*'*) continue ;; esac
      [ -f "$file" ] && cp "$file" "corpus/$target/"
    done
  done
}
seed record 'record-*' 'chain-*'
seed packet 'packet-*'
seed snapshot 'snapshot-full*'
seed delta 'snapshot-delta*'
seed qr 'qr-*'

for target in "${targets[@]}"; do
  echo "==> fuzz $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1
done

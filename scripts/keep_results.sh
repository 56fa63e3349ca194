#!/usr/bin/env bash
# Copies what a `udc search|train --seeds` folder measured into results/NAME, so that the
# evidence survives the machine: seeds.json (each seed's figures and mean ± std) and, per
# seed, the found architecture (derived.yaml, searches only), the integer model
# (model.udcm, to re-measure with `udc eval` / `udc run`) and, for a co-search, the found
# NPU (npu.yaml) and the visited pairs (pairs.csv, pareto.svg), and the derivation's
# candidates with their scores (derivation.json). Checkpoints stay behind.
# Usage: scripts/keep_results.sh RUN_DIR NAME
# Seeds already kept under NAME that RUN_DIR lacks stay; seeds.json comes from RUN_DIR, so
# run later seeds into the same RUN_DIR (its seeds.json accumulates) or merge by hand.
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 RUN_DIR NAME" >&2
  exit 2
fi
run=$1
name=$2
cd "$(dirname "$0")/.."
if [[ ! -f "$run/seeds.json" ]]; then
  echo "keep_results.sh: $run/seeds.json not found (run with --seeds)" >&2
  exit 1
fi
kept=results/$name
mkdir -p "$kept"
cp "$run/seeds.json" "$kept/seeds.json.tmp" && mv "$kept/seeds.json.tmp" "$kept/seeds.json"
for seed_dir in "$run"/seed-*; do
  [[ -f "$seed_dir/model.udcm" ]] || continue  # not finished
  out=$kept/$(basename "$seed_dir")
  mkdir -p "$out"
  for file in derived.yaml derivation.json model.udcm npu.yaml pairs.csv pareto.svg; do
    [[ -f "$seed_dir/$file" ]] && cp "$seed_dir/$file" "$out/$file"
  done
done
echo "kept $(ls -d "$kept"/seed-* 2>/dev/null | wc -l) seeds of $run in $kept"

#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan and UBSan, every udc library instrumented)
# and runs them from seed corpora. Usage:
#   scripts/fuzz.sh [TARGET|all] [RUNS]     RUNS executions each (default 1000000)
#   scripts/fuzz.sh [TARGET|all] 60s        60 seconds each
# Targets: decoder udcm tflite command_stream npu_config npy idx config. A crash leaves its input
# in build-fuzz/crashes/<target>/; make it a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(decoder udcm tflite command_stream npu_config npy idx config)
which=${1:-all}
amount=${2:-1000000}
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2
  exit 2
fi
if [[ "$which" != all ]]; then
  if [[ " ${targets[*]} " != *" $which "* ]]; then
    echo "fuzz.sh: unknown target '$which' (expected one of: ${targets[*]}, all)" >&2
    exit 2
  fi
  targets=("$which")
fi
if [[ "$amount" == *s ]]; then limit=(-max_total_time="${amount%s}"); else limit=(-runs="$amount"); fi

CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUDC_FUZZ=ON \
  -DUDC_BUILD_TESTS=OFF -DUDC_BUILD_BENCHES=OFF >/dev/null
cmake --build build-fuzz --target $(printf 'udc_%s_fuzz ' "${targets[@]}")

# Seeds: the project's own files of each format.
seed() {
  local dir=build-fuzz/corpus/$1
  mkdir -p "$dir"
  case $1 in
    decoder) cp -n tests/data/mlw/*.mlw "$dir"/ ;;
    udcm) cp -n tests/data/calibration/vela_wholenet/*.udcm "$dir"/ ;;
    tflite) ;;  # no .tflite in the tree yet: the fuzzer starts from its own inputs
    command_stream) cp -n npu_sim/examples/*.json "$dir"/ ;;
    npu_config) cp -n configs/npu/*.yaml configs/npu/systems/*.yaml "$dir"/ ;;
    npy) for f in tests/data/calibration/vela/*.npy; do head -c 2048 "$f" >"$dir/$(basename "$f")"; done ;;
    idx)
      # The label file's size in one byte, the label file (2 labels), the image file (2
      # images of 2x2).
      printf '\x0a\x00\x00\x08\x01\x00\x00\x00\x02\x00\x01\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03\x04\x05\x06\x07\x08' \
        >"$dir/two_images" ;;
    config)
      for f in configs/train/*.yaml; do { printf '\x00'; cat "$f"; } >"$dir/train_$(basename "$f")"; done
      for f in configs/search/*.yaml; do { printf '\x01'; cat "$f"; } >"$dir/search_$(basename "$f")"; done ;;
  esac
}

status=0
for target in "${targets[@]}"; do
  seed "$target"
  mkdir -p "build-fuzz/crashes/$target"
  binary=$(find build-fuzz -name "udc_${target}_fuzz" -type f -perm -u+x | head -1)
  echo "== $target"
  if ! "$binary" "${limit[@]}" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$target/" \
      "build-fuzz/corpus/$target" 2>"build-fuzz/$target.log"; then
    status=1
    echo "$target: FAILED (see build-fuzz/$target.log and build-fuzz/crashes/$target/)"
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "build-fuzz/$target.log" ||
    tail -5 "build-fuzz/$target.log"
done
exit $status

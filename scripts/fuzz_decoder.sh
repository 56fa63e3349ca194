#!/usr/bin/env bash
# Builds the decoder's libFuzzer target with clang and runs it for N seconds
# (default 60) from the reference streams. Usage: scripts/fuzz_decoder.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! command -v clang++ >/dev/null; then
  echo "fuzz_decoder.sh: clang++ not found (apt-get install clang)" >&2
  exit 2
fi
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUDC_FUZZ=ON \
  -DUDC_BUILD_TESTS=OFF -DUDC_BUILD_BENCHES=OFF >/dev/null
cmake --build build-fuzz --target udc_decoder_fuzz
corpus=build-fuzz/corpus
mkdir -p "$corpus"
cp -n tests/data/mlw/*.mlw "$corpus"/ 2>/dev/null || true
build-fuzz/compression/udc_decoder_fuzz -max_total_time="$seconds" -max_len=8192 "$corpus"

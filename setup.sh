#!/usr/bin/env bash
# udc set-up: installs the Debian packages the project needs (only those missing, so a second
# run is quick), configures and builds. Then, depending on the first argument:
#   ./setup.sh          install and build only
#   ./setup.sh run      ... and run the main job on its built-in default
#   ./setup.sh test     ... and run the whole test suite (ctest)
# Environment: UDC_BUILD_DIR (default build), UDC_BUILD_TYPE (default Release),
#              UDC_SANITIZE=ON for an AddressSanitizer/UBSan build.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  cmake ninja-build g++ pkg-config
  libgtest-dev libbenchmark-dev libcli11-dev libfmt-dev
  libsystemc-dev libyaml-cpp-dev nlohmann-json3-dev
  libtorch-dev libgloo-dev libstb-dev zlib1g-dev dataset-fashion-mnist
  libflatbuffers-dev flatbuffers-compiler openmpi-bin libopenmpi-dev
  libarmnn-dev libarmnntfliteparser-dev libarmnn-cpuref-backend22
  opencv-doc
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir=${UDC_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="${UDC_BUILD_TYPE:-Release}" \
  -DUDC_SANITIZE="${UDC_SANITIZE:-OFF}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

case "${1:-}" in
  "") ;;
  run)
    # The quick preset of the hardware-aware search on Fashion-MNIST (resumes if
    # interrupted): warm-up, search, derivation, fine-tune, export, verification; then the
    # found model on the simulated NPU and its accuracy there.
    npu=configs/npu/u55-128-deep-embedded.yaml
    out="$build_dir/runs/fmnist-quick"
    "$build_dir/udc" search --config configs/search/fmnist-quick.yaml -o "$out"
    echo
    "$build_dir/udc" run "$out/model.udcm" --npu "$npu"
    echo
    "$build_dir/udc" eval "$out/model.udcm" --on simulator --npu "$npu" --limit 1000
    ;;
  test) ctest --test-dir "$build_dir" -j"$(nproc)" --output-on-failure ;;
  *) echo "setup.sh: unknown command '$1' (expected: run, test, or nothing)" >&2; exit 2 ;;
esac

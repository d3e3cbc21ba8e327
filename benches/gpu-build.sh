#!/usr/bin/env bash
# Build, on this (CPU) machine, the binaries that benches/gpu.sh runs on a GPU machine, which
# builds nothing: stripped and gzipped into .device-bin/ (ignored by git), so that all three
# travel together within a 64 MiB carry.
#
#   benches/gpu-build.sh [plain] [tuned] [fused]     # default: all three
#
#   plain  .device-bin/curvature.gz        --features cuda            (burn's fixed kernels)
#   tuned  .device-bin/curvature-tuned.gz  --features cuda,autotune   (for `curvature tune`)
#   fused  .device-bin/curvature-fused.gz  --features cuda,fusion     (burn's operation fusion)
#
# Then, on the GPU machine (see docs/benchmarks.md, "Pending GPU rows"):
#   benches/gpu.sh .device-bin/curvature.gz $OUT
#   STEPS=tune,fusion TUNED_BINARY=.device-bin/curvature-tuned.gz \
#     FUSED_BINARY=.device-bin/curvature-fused.gz benches/gpu.sh .device-bin/curvature.gz $OUT
# CUDARC_CUDA_VERSION (default 13000) is the CUDA API version cudarc binds to; no CUDA toolkit
# is needed here.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(plain tuned fused)
mkdir -p .device-bin
for v in "${variants[@]}"; do
  case $v in
    plain) features=cuda name=curvature ;;
    tuned) features=cuda,autotune name=curvature-tuned ;;
    fused) features=cuda,fusion name=curvature-fused ;;
    *) echo "unknown variant '$v' (plain, tuned, fused)" >&2; exit 2 ;;
  esac
  echo "== $name: cargo build --release -p curvature-cli --no-default-features --features $features =="
  cargo build --release -p curvature-cli --no-default-features --features "$features"
  strip -o ".device-bin/$name" target/release/curvature
  gzip -f -9 ".device-bin/$name"
done
ls -l .device-bin
du -ch .device-bin/*.gz | tail -1

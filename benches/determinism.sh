#!/bin/bash
# Is training bit-reproducible on each CPU backend (and, for a build with threaded kernels,
# independent of the thread count)? Trains the same small KFAC CNN three times with
# RAYON_NUM_THREADS=1 and =2 per backend and prints the SHA-256 prefix of each run's final
# weights with its last metrics row: every line of a backend must show the same hash. Usage: benches/determinism.sh [BINARY] (default: the
# release build of `cargo build --release -p curvature-cli --features flex`).
BIN=${1:-target/release/curvature}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for b in ndarray flex; do
  for t in 1 2; do
    for r in a b c; do
      tag=$b-t$t-$r
      RAYON_NUM_THREADS=$t "$BIN" --quiet train --out "$OUT/$tag" --model cnn --channels 8,16 \
        --data optdigits --optimizer kfac --lr 0.05 --epochs 2 --batch-size 64 \
        --backend "$b" --force > /dev/null 2>&1 || { echo "FAILED: $tag"; continue; }
      sha=$(sha256sum "$OUT/$tag/weights.safetensors" | cut -c1-16)
      echo "$tag $sha $(cut -d, -f1-8 "$OUT/$tag/metrics.csv" | tail -1)"
    done
  done
done

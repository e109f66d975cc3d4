#!/usr/bin/env bash
# Retrain the Toy Kitchen model sets on the shipped autoencoder (data/toykitchen/autoencoder), as one
# run for a lent GPU machine (issue 14). The SD-style and the Flux-style stages run at once as two
# processes on the one GPU, each continuing the shipped set of its kind (--init-from data/toykitchen:
# U-Net / transformer and text encoders; the autoencoder is new, the latent shape is the same), for
# STEPS steps with the learning-rate schedule planned over those steps, and a wall-clock cap MINUTES
# that stops a stage early if the GPU is slower than expected (the log records the steps done).
# Each finished set is packed for the trip back: sd.tar.* / flux.tar.* (parts under 16 MiB), the two
# training logs and log.txt (seven files: the device tool brings back at most eight).
#
#   OUT=/tmp/tk bash benchmarks/gpu_toykitchen.sh             # STEPS=3000 MINUTES=6.5 by default
#   STEPS=2000 MINUTES=4 OUT=/tmp/tk bash benchmarks/gpu_toykitchen.sh
#   PRESET=smoke STEPS=2 WHEELS=none PATH=.venv/bin:$PATH bash benchmarks/gpu_toykitchen.sh   # the script itself, on a CPU
#
# Back on the development machine (docs/toykitchen.md, "Rebuilding"): unpack into data/toykitchen,
# then `python -m cooklab.toykitchen.evaluate` for the held-out table (CPU, as the shipped figures).
set -u
OUT=${OUT:-/tmp/gpu-toykitchen}
STEPS=${STEPS:-3000}
MINUTES=${MINUTES:-6.5}
PRESET=${PRESET:-gpu}  # PRESET=smoke STEPS=2 tries the script on a CPU in a minute
WORK=${WORK:-/tmp/toykitchen-work}
mkdir -p "$OUT" "$WORK"
WHEELS=${WHEELS:-.whl}  # packages the GPU machine lacks, as wheels (docs/performance.md); WHEELS=none skips them
if [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
log="$OUT/log.txt"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"; } 2>&1 | tee -a "$log"
rm -rf "$WORK/autoencoder" && cp -r data/toykitchen/autoencoder "$WORK/autoencoder"
stage() {  # stage NAME: one `cooklab toykitchen train` stage into $WORK, its output in $OUT/NAME.txt
  python3 -m cooklab toykitchen train --out "$WORK" --stages "$1" --preset "$PRESET" --init-from data/toykitchen \
    --"$1"-steps "$STEPS" --max-minutes "$MINUTES" --workers 8 > "$WORK/$1.txt" 2>&1
  echo "=== $1: exit $? at $(date -u +%T)" | tee -a "$log"
}
echo "=== sd and flux from $(date -u +%T): $STEPS steps each, cap $MINUTES min" | tee -a "$log"
stage sd & stage flux & wait
for name in sd flux; do
  cp "$WORK/${name}_training.json" "$OUT/" 2>/dev/null
  if [ -f "$WORK/$name/model_index.json" ]; then
    tar -C "$WORK" -cf - "$name" | split -b 15m - "$OUT/$name.tar."
  fi
done
cat "$WORK/sd.txt" "$WORK/flux.txt" >> "$log"
ls -l "$OUT" | tee -a "$log"

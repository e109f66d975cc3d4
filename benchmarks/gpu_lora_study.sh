#!/usr/bin/env bash
# The LoRA settings study on world v3 (issue 30) as one part of a GPU call: benchmarks/lora_settings_study.py on the
# v3 LoRA config, a wall-clock cap, then what comes back packed into $OUT (the rows, the table, the choice and the
# chosen adapter: lora-study.tar.*, parts under 16 MiB; the runs' checkpoints stay in $WORK). Run it after the v3
# Flux-style set is trained (MODEL: that set's pipeline folder). The study resumes: run again with the same WORK
# (a warm machine keeps it) and it continues the runs and the rows where they stopped. It needs the packages the
# GPU script installs first from .whl (diffusers, pydantic, peft: docs/performance.md), so call it from there.
#
#   MODEL=/tmp/toykitchen-work/flux OUT=/tmp/gpu bash benchmarks/gpu_lora_study.sh      # MINUTES=4 JOBS=9
#   SMOKE=1 MODEL=toy CONFIG=data/toykitchen/lora/train.yaml OUT=/tmp/s bash benchmarks/gpu_lora_study.sh   # a CPU
set -u
OUT=${OUT:-/tmp/gpu-lora-study}
WORK=${WORK:-/tmp/lora-study-work}
MODEL=${MODEL:-toy}
CONFIG=${CONFIG:-data/toykitchen/lora_v3_train.yaml}
MINUTES=${MINUTES:-4}
JOBS=${JOBS:-9}  # the baseline and the grid's 8 runs at once, one process each, sharing the GPU
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
log="$OUT/lora_study.txt"
smoke=()
if [ "${SMOKE:-0}" = 1 ]; then smoke=(--smoke); fi
echo "=== lora study from $(date -u +%T): $CONFIG on $MODEL, cap $MINUTES min, $JOBS jobs" | tee -a "$log"
python3 benchmarks/lora_settings_study.py --config "$CONFIG" --model "$MODEL" --out "$WORK/lora-study" \
  --max-minutes "$MINUTES" --jobs "$JOBS" "${smoke[@]}" 2>&1 | grep -v "it/s\]" >> "$log"
echo "=== lora study: exit ${PIPESTATUS[0]} at $(date -u +%T)" | tee -a "$log"
files=$(cd "$WORK/lora-study" && ls -d results.jsonl tables.md choice.json chosen rows runs/*/loss.jsonl runs/*/training.json 2>/dev/null)
if [ -n "$files" ]; then
  tar -C "$WORK/lora-study" -cf - $files | split -b 15m - "$OUT/lora-study.tar."
fi
ls -l "$OUT" | tee -a "$log"

#!/usr/bin/env bash
# All v3 training of the Toy Kitchen model sets (issue 30) as ONE prepared run for a lent GPU machine, under 9 minutes
# on one H100 / H200. Exact device-tool call (from the repository root; the first call of a session):
#
#   run(command="OUT=$OUT bash benchmarks/gpu_toykitchen_v3.sh", timeout_s=600)
#
# What it trains (docs/toykitchen.md, "Rebuilding: v3"): the shipped food-keeping autoencoder
# (data/toykitchen/autoencoder) is reused as it is; the SD-style and the Flux-style sets run at once as two
# processes on the one GPU, each continuing the shipped set of its kind (--init-from data/toykitchen: every known
# token keeps its embedding row, moved by token; the new words' rows start at zero) with the v3 switches: --world v3 (the
# tokenizers' words and the recipes of the context captions), --context-share (steps 1..k of a recipe captioning
# the scene after step k) and, for the Flux set only, --panel-share (pictures of 2-4 stacked panels with one
# caption). Each stops at STEPS or at MINUTES, whichever comes first. Then the Toy Kitchen CLIP (the metrics'
# backbone) is retrained with the v3 vocabulary, on renders and on frames the two new sets draw, capped at
# CLIP_MINUTES.
#
# What comes back in $OUT (at most 8 files of at most 16 MiB; the tool brings back no more):
#   sd.tar.aa sd.tar.ab       the sd set and its log, a tar split in 15 MiB parts
#   flux.tar.aa flux.tar.ab   the flux set and its log
#   rest.tar                  the clip folder, every stage's JSON log and its console output
#   log.txt                   every call's log, this call's appended to the earlier calls'
#
# Resume across calls: a stage stopped by MINUTES has saved its set (EMA weights) and a log short of its plan.
# To continue, put ALL the files of the previous call into .gpu_resume/ at the repository root and call again:
#
#   echo /.gpu_resume/ >> .git/info/exclude; mkdir -p .gpu_resume; cp <files_at>/* .gpu_resume/
#   rm -rf data/toykitchen/sd data/toykitchen/flux   # the travelling tree is at most 64 MiB; a resumed call
#                                                    # continues from .gpu_resume, not from the shipped sets
#   run(command="OUT=$OUT bash benchmarks/gpu_toykitchen_v3.sh", carry=[".gpu_resume"], timeout_s=600)
#   git checkout -- data/toykitchen/sd data/toykitchen/flux                        # afterwards, here
#
# The script unpacks .gpu_resume into its work folder, skips a stage whose log says it is done, continues a
# stopped one (--resume: the same schedule from step steps_done; AdamW's moments restart, training_loop.py) and
# packs everything again. Repeat until log.txt says every stage is done.
#
# On this CPU, the whole script in a minute or two (WORLD=v2 until the v3 world is registered):
#   PRESET=smoke WORLD=v2 WHEELS=none OUT=/tmp/v3smoke PATH=/work/main/.venv/bin:$PATH bash benchmarks/gpu_toykitchen_v3.sh
#
# Back on the development machine: unpack sd.tar.* / flux.tar.* / rest.tar into a folder, evaluate there
# (`python -m cooklab.toykitchen.evaluate`, `cooklab evaluate`), and copy the sets into data/toykitchen only when
# the v3 models replace the shipped ones.
set -u
OUT=${OUT:-/tmp/gpu-toykitchen-v3}
PRESET=${PRESET:-gpu}
if [ "$PRESET" = smoke ]; then  # the script itself on a CPU: two steps a stage unless given
  : "${STEPS:=2}" "${CLIP_STEPS:=2}" "${CLIP_GENERATED:=2}" "${CLIP_IMAGES:=48}" "${CONTEXT_RECIPES:=6}" "${WORKERS:=2}"
fi
WORLD=${WORLD:-v3}
STEPS=${STEPS:-2000}            # planned sd / flux steps (the schedule spans them); ~4.3 min at the shipped run's 7.7/s
MINUTES=${MINUTES:-5}           # wall-clock cap of each of the sd / flux stages
CLIP_STEPS=${CLIP_STEPS:-3000}
CLIP_MINUTES=${CLIP_MINUTES:-1.2}
CLIP_GENERATED=${CLIP_GENERATED:-600}  # frames each new set draws for the CLIP stage
CLIP_IMAGES=${CLIP_IMAGES:-30000}      # renders of the CLIP stage (as the shipped CLIP)
CONTEXT_SHARE=${CONTEXT_SHARE:-0.3}
CONTEXT_RECIPES=${CONTEXT_RECIPES:-6000}
PANEL_SHARE=${PANEL_SHARE:-0.25}
WORKERS=${WORKERS:-8}
RESUME=${RESUME:-.gpu_resume}
WORK=${WORK:-/tmp/toykitchen-v3-work}
mkdir -p "$OUT" "$WORK"
WHEELS=${WHEELS:-.whl}  # packages the GPU machine lacks, as wheels (docs/performance.md); WHEELS=none skips them
if [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
log="$OUT/log.txt"
resumed=""
if [ -f "$RESUME/log.txt" ]; then  # a later call: the earlier calls' log, sets and logs back in place
  cp "$RESUME/log.txt" "$log"
  for name in sd flux; do
    if ls "$RESUME/$name".tar.* >/dev/null 2>&1; then cat "$RESUME/$name".tar.* | tar -C "$WORK" -xf -; fi
  done
  if [ -f "$RESUME/rest.tar" ]; then tar -C "$WORK" -xf "$RESUME/rest.tar"; fi
  resumed="--resume"
fi
echo "=== call from $(date -u +%T) ${resumed:+(resuming from $RESUME)}: world $WORLD, preset $PRESET" | tee -a "$log"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no GPU"; python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"; } 2>&1 | tee -a "$log"
rm -rf "$WORK/autoencoder" && cp -r data/toykitchen/autoencoder "$WORK/autoencoder"
done_() {  # done_ NAME: 0 when the stage's log in $WORK says it ran all its planned steps (clip: when it ran)
  [ "$1" = clip ] && { [ -f "$WORK/clip_training.json" ]; return; }
  python3 -c "import json, sys; d = json.load(open('$WORK/$1_training.json')); sys.exit(d['steps_done'] < d['config']['$1_steps'])" 2>/dev/null
}
stage() {  # stage NAME ARGS...: one `cooklab toykitchen train` stage into $WORK, its output in $WORK/NAME.txt
  local name=$1; shift
  if done_ "$name"; then echo "=== $name: done in an earlier call" | tee -a "$log"; return; fi
  python3 -m cooklab toykitchen train --out "$WORK" --stages "$name" --preset "$PRESET" --world "$WORLD" \
    --workers "$WORKERS" $resumed "$@" >> "$WORK/$name.txt" 2>&1
  echo "=== $name: exit $? at $(date -u +%T)" | tee -a "$log"
}
echo "=== sd and flux from $(date -u +%T): $STEPS steps each, cap $MINUTES min" | tee -a "$log"
common=(--init-from data/toykitchen --max-minutes "$MINUTES" --context-share "$CONTEXT_SHARE" --context-recipes "$CONTEXT_RECIPES")
stage sd --sd-steps "$STEPS" "${common[@]}" &
stage flux --flux-steps "$STEPS" --panel-share "$PANEL_SHARE" "${common[@]}" &
wait
if done_ sd && done_ flux; then
  echo "=== clip from $(date -u +%T): $CLIP_STEPS steps, cap $CLIP_MINUTES min" | tee -a "$log"
  stage clip --clip-steps "$CLIP_STEPS" --clip-generated "$CLIP_GENERATED" --images "$CLIP_IMAGES" \
    --max-minutes "$CLIP_MINUTES"
else
  echo "=== clip waits for sd and flux to finish (call again to resume them)" | tee -a "$log"
fi
rm -f "$OUT"/sd.tar.* "$OUT"/flux.tar.* "$OUT/rest.tar"
for name in sd flux; do
  if [ -f "$WORK/$name/model_index.json" ]; then
    tar -C "$WORK" -cf - "$name" "${name}_training.json" | split -b 15m - "$OUT/$name.tar."
  fi
done
rest=$(cd "$WORK" && ls -d clip clip_training.json sd.txt flux.txt clip.txt 2>/dev/null)
if [ -n "$rest" ]; then tar -C "$WORK" -cf "$OUT/rest.tar" $rest; fi
for name in sd flux clip; do
  if [ -f "$WORK/${name}_training.json" ]; then
    python3 -c "import json; d = json.load(open('$WORK/${name}_training.json')); print('=== ${name}_training.json:', d['steps_done'], 'steps,', d['seconds'], 's, last loss', d['losses'][-1] if d['losses'] else None)" | tee -a "$log"
  fi
done
tail -n 5 "$WORK"/sd.txt "$WORK"/flux.txt "$WORK"/clip.txt 2>/dev/null >> "$log"
ls -l "$OUT" | tee -a "$log"

#!/usr/bin/env bash
# ViT-H under FSDP on 2 CPU processes (gloo): gin/recipes/hvm1.gin (HVM-1's ViT-H/14, 633 M
# parameters, real width and depth) at a reduced clip size (4 frames at 56 px: 32 tokens, batch
# 1 per process, 3 steps, a checkpoint every step) starts and trains; SIGTERM after its first
# checkpoint stops it as a scheduler's preemption does (the trainer checkpoints and exits), and
# --resume finishes it. Prints the wall time of each part. Needs about 20 GB of free memory
# (docs/benchmarks.md, "FSDP on CPU"). Usage, from the repository root:
#   tools/fsdp_vit_h.sh [run_dir]      (default runs/fsdp_vit_h; must not exist)
set -u
RUN=${1:-runs/fsdp_vit_h}
PARAMS=(--gin_param "MovingDigits.frames = 4" --gin_param "MovingDigits.size = 56"
        --gin_param "MovingDigits.digit_size = 21" --gin_param "pretrain.batch_size = 1"
        --gin_param "pretrain.steps = 3" --gin_param "pretrain.save_every = 1" --gin_param "pretrain.log_every = 1"
        --gin_param "pretrain.num_workers = 0" --gin_param "evaluations.probes = []")

train() {
  ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} python -m accelerate.commands.launch \
    --config_file tools/accelerate/fsdp_full_shard.yaml --num_processes 2 --main_process_port 0 \
    --mixed_precision no -m mmmae train --gin_file gin/recipes/hvm1.gin "${PARAMS[@]}" --output_dir "$RUN" "$@"
}

start=$SECONDS
train &
launcher=$!
until [ -f "$RUN/checkpoints/latest" ] || ! kill -0 "$launcher" 2>/dev/null; do sleep 2; done
# A preemption: SIGTERM to the training processes (the launcher does not pass it on); each
# checkpoints after its step and stops.
descendants() { for child in $(pgrep -P "$1"); do echo "$child"; descendants "$child"; done; }
kill -TERM $(descendants "$launcher") 2>/dev/null
wait "$launcher"
echo "stopped after $((SECONDS - start)) s at $(cat "$RUN/checkpoints/latest")"
resumed=$SECONDS
train --resume || exit
echo "resumed and finished in $((SECONDS - resumed)) s; total $((SECONDS - start)) s"

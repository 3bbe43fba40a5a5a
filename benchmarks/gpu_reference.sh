#!/usr/bin/env bash
# A BabyLM-scale reference run: all BabyLM training text but heldout/, the `small` GPT-BERT of
# the BabyLM 2025 recipe (configs/babylm-2025-gptbert-mixed.yaml) for 10 epochs, every
# zero-shot task, and one summary of speed and scores.
#
#   bash benchmarks/gpu_reference.sh [--scale gpu|cpu] DATA_ROOT OUT_DIR
#
# DATA_ROOT is laid out like the project's shared data: babylm/{train_10M,sample_1M_dev,
# sample_300k,sample_600k,heldout}/ and the evaluation folders `thrifty eval --data-root`
# reads (blimp/, babylm_eval/...). OUT_DIR gets data/, runs/ and summary.md (+ summary.json).
#
# --scale gpu (default): on one CUDA device, bf16. The four training folders hold 5.35M words
#   (heldout/ is for held-out measurement only and is left out); 10 epochs are ~53M words,
#   ~70M tokens with the 16k vocabulary. The model's 31M parameters cost ~0.2 GFLOPs/token
#   in training, ~1.4e16 FLOPs in all: 47 s at MFU 0.3 of an H200's 989 TFLOP/s, 4.7 min at
#   MFU 0.05. Preparing (the BPE tokenizer on 5.35M words) takes under a minute and the
#   evaluation about one, so the run fits 6 minutes only from MFU ~0.08 up. EPOCHS=N (an
#   environment variable) shortens it; COMPILE=1 adds train.compile=true (one compile per
#   sequence-length phase). Run together with the throughput benchmark, under 8 minutes:
#     python benchmarks/gpu_throughput.py --out gpu_throughput.md && \
#       bash benchmarks/gpu_reference.sh DATA_ROOT gpu-reference
# --scale cpu: the same stages at toy size on the CPU in under a minute (20k words, a
#   nano-sized model, 20 steps, 2 items per subtask), so the script is tested where no GPU is.
set -euo pipefail

scale=gpu
if [ "${1:-}" = "--scale" ]; then
  scale="${2:?--scale needs gpu or cpu}"
  shift 2
fi
if [ $# -ne 2 ] || { [ "$scale" != gpu ] && [ "$scale" != cpu ]; }; then
  echo "usage: bash benchmarks/gpu_reference.sh [--scale gpu|cpu] DATA_ROOT OUT_DIR" >&2
  exit 2
fi
data_root="$1"
out="$2"
here="$(cd "$(dirname "$0")" && pwd)"
sources=()
for name in train_10M sample_1M_dev sample_300k sample_600k; do
  if [ ! -d "$data_root/babylm/$name" ]; then
    echo "gpu_reference: $data_root/babylm/$name is missing" >&2
    exit 2
  fi
  sources+=("$data_root/babylm/$name")
done
mkdir -p "$out"
run_name=babylm-reference

if [ "$scale" = gpu ]; then
  prepare=(--vocab-size 16384)
  train=(train.device=cuda "train.max_epochs=${EPOCHS:-10}")
  [ "${COMPILE:-0}" = 1 ] && train+=(train.compile=true)
  evaluate=(--device cuda)
else
  prepare=(--vocab-size 512 --budget-words 20000 --selection sample)
  train=(train.device=cpu train.threads=2 train.max_steps=20 train.batch_size=8
    train.warmup_steps=2 train.eval_every=10 train.checkpoint_every=0
    model.d_model=64 model.n_layers=2 model.n_heads=2 model.d_ff=128 model.max_seq_len=512
    data.seq_len=32 "data.seq_len_curriculum={0.5: 64}")
  # causal scoring (one pass per sentence; the GPU run scores with the recipe's own backend)
  # and 2 items per subtask; max_seq_len 512 for entity tracking's long contexts
  evaluate=(--device cpu --backend causal --max-items-per-subtask 2)
fi

thrifty prepare "${sources[@]}" --out "$out/data" --overwrite --quiet "${prepare[@]}"
start=$(date +%s)
thrifty train "$here/../configs/babylm-2025-gptbert-mixed.yaml" name="$run_name" \
  data.path="$out/data" runs_dir="$out/runs" eval.blimp_data=null "${train[@]}"
train_seconds=$(($(date +%s) - start))
thrifty eval "$out/runs/$run_name" --task all --data-root "$data_root" --quiet "${evaluate[@]}"
thrifty audit "$out/runs/$run_name"
python "$here/gpu_reference_summary.py" "$out/runs/$run_name" --scale "$scale" \
  --train-seconds "$train_seconds" --out "$out/summary.md"

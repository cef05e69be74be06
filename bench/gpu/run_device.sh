#!/usr/bin/env bash
# One prepared pass over the GPU paths, for a lent H100: DeepSpeed bf16 training throughput and
# MFU (against plain torch in the same run), generation throughput, and the real pretrain worker
# on CUDA. Wheels the machine lacks (pydantic, deepspeed, hjson) travel in .whl/ (not committed).
# Writes JSON lines to $OUT (or ./out).
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ -z "${NO_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/operator:$PWD/bench:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
python3 -c "import deepspeed; print('deepspeed', deepspeed.__version__)" 2>&1 | tail -1 | tee -a "$OUT/gpu.txt"
python3 -c "import vllm; print('vllm', vllm.__version__)" 2>&1 | tail -1 | tee -a "$OUT/gpu.txt"

echo "== training step: DeepSpeed ZeRO-1 bf16, then plain torch bf16 autocast (same shape)"
timeout 150 python3 bench/gpu/train_bench.py 2>"$OUT/train_ds.err" | tee "$OUT/train.jsonl"
tail -5 "$OUT/train_ds.err"
timeout 90 python3 bench/gpu/train_bench.py --no-deepspeed 2>"$OUT/train_torch.err" | tee -a "$OUT/train.jsonl"
tail -3 "$OUT/train_torch.err"

if [ -n "${WITH_SYNTH:-}" ]; then
  echo "== generation: transformers batched (and vLLM when installed)"
  timeout 120 python3 bench/gpu/synth_bench.py 2>"$OUT/synth.err" | tee "$OUT/synth.jsonl"
  tail -3 "$OUT/synth.err"
fi

echo "== the pretrain worker itself on CUDA (tiny preset, file:// artifacts)"
python3 - <<'PY' > /tmp/pretrain-config.json
import json
print(json.dumps({"task": "pretrain", "kind": "PretrainJob", "name": "gpu-check", "uid": "gpu",
  "output": "file:///tmp/gpu-run/", "params": {"model": {"preset": "tiny"},
  "tokenizer": {"train": True, "vocabSize": 512},
  "phases": [{"name": "pretrain", "steps": 60, "blend": [{"source": "english", "weight": 1},
             {"source": "arithmetic", "weight": 1}], "lr": 3e-3, "minLr": 3e-4, "decay": "cosine",
             "warmupSteps": 5}],
  "batchRamp": [{"globalBatchSize": 16}], "checkpoint": {"everySteps": 30, "resume": True}, "seed": 0}}))
PY
timeout 90 python3 -m synthloop.workers.cli pretrain --config /tmp/pretrain-config.json > "$OUT/worker.log" 2>&1
echo "worker rc=$?"; grep -E '"step"' "$OUT/worker.log" | tail -3; tail -3 "$OUT/worker.log"
ls /tmp/gpu-run/ 2>/dev/null; python3 -c "import json; m=json.load(open('/tmp/gpu-run/manifest.json')); print('manifest outputs', len(m['outputs']), 'metrics', m['metrics'])"

echo "== the pretrain worker under torchrun: a rank per GPU of this device (DDP, or DeepSpeed when installed)"
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l); NGPU=${NGPU:-1}; [ "$NGPU" -ge 1 ] || NGPU=1
sed -e 's#file:///tmp/gpu-run/#file:///tmp/gpu-run-ranks/#' -e 's#"gpu-check"#"gpu-ranks"#' \
  /tmp/pretrain-config.json > /tmp/pretrain-ranks-config.json
timeout 150 python3 -m synthloop.workers.runtime.launch --standalone --nnodes=1 --nproc-per-node="$NGPU" \
  --max-restarts=0 -m synthloop.workers.cli pretrain --config /tmp/pretrain-ranks-config.json \
  > "$OUT/worker_ranks.log" 2>&1
echo "torchrun worker rc=$? over $NGPU rank(s)"; grep -E '"step"' "$OUT/worker_ranks.log" | tail -2; tail -3 "$OUT/worker_ranks.log"
python3 -c "import json; m=json.load(open('/tmp/gpu-run-ranks/manifest.json')); print('ranks', m['counts'].get('ranks'), 'metrics', m['metrics'])" \
  | tee "$OUT/worker_ranks.txt"

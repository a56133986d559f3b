#!/usr/bin/env bash
# Run training on this machine (a thin wrapper over `clinical-t5 launch local`):
#
#   launch/local.sh -- --gin_file=gin/runs/pretrain.gin \
#       --gin_file=gin/models/t5_1_1_tiny.gin --gin.MODEL_DIR="'/tmp/clinical-t5-tiny'" ...
#
# By default one process uses every local device (all GPUs of the machine),
# which is the fastest set-up on one host. To exercise the multi-host code
# paths, start several jax.distributed processes on 127.0.0.1:
#
#   launch/local.sh --num-processes 2 --cpu-devices-per-process 4 -- ...
#   launch/local.sh --num-processes 8 --gpus-per-process 1 -- ...
#
# Logs: launch_logs/local/process-<i>.log (change with --log-dir).
# CLINICAL_T5_PYTHON picks the interpreter (default: .venv/bin/python of this checkout).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${CLINICAL_T5_PYTHON:-$REPO/.venv/bin/python}"
exec "$PYTHON" -m clinical_t5.cli launch local --num-processes 1 "$@"

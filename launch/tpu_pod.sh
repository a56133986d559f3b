#!/usr/bin/env bash
# Run training on every worker of an existing Cloud TPU VM (a thin wrapper over
# `clinical-t5 launch tpu`; it creates no TPU):
#
#   launch/tpu_pod.sh --tpu my-v4-32 --zone us-central2-b [--dry-run] -- \
#       --gin_file=gin/runs/pretrain.gin --gin_file=gin/models/t5_1_1_base.gin \
#       --gin.MODEL_DIR="'gs://my-bucket/runs/base'" ...
#
# Options before `--` go to the launcher (see `clinical-t5 launch tpu --help`),
# everything after it to the trainer. CLINICAL_T5_PYTHON picks the interpreter
# (default: .venv/bin/python of this checkout).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${CLINICAL_T5_PYTHON:-$REPO/.venv/bin/python}"
exec "$PYTHON" -m clinical_t5.cli launch tpu "$@"

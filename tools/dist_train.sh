#!/usr/bin/env bash
# Data-parallel training with MindSpore's msrun launcher (Ascend in production, CPU/GPU work too).
#
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py args ...]
#
# Environment (same names as mmpretrain's script): NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1),
# PORT (29500), LOG_DIR (<work_dir>/msrun_logs; worker_<rank>.log per process).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG NPROC [tools/train.py args ...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
source "$(dirname "$0")/msrun_common.sh"
msrun_launch "$(dirname "$0")/train.py" "$CONFIG" "$@"

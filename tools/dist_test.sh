#!/usr/bin/env bash
# Distributed evaluation with MindSpore's msrun launcher: every sample is evaluated exactly once over all ranks and
# rank 0 prints the global accuracy/top1 and accuracy/top5.
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py args ...]
#
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), LOG_DIR (<work_dir>/msrun_logs).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT NPROC [tools/test.py args ...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
source "$(dirname "$0")/msrun_common.sh"
msrun_launch "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" "$@"

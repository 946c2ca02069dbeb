# Shared by dist_train.sh / dist_test.sh (sourced; expects CONFIG and NPROC).
# msrun_launch SCRIPT ARGS...: run SCRIPT on NNODES x NPROC processes with --launcher msrun appended.
msrun_launch() {
    local script=$1
    shift
    case "$NPROC" in
        ''|*[!0-9]*|0) echo "NPROC must be a positive integer, got '$NPROC'" >&2; exit 2 ;;
    esac
    if [ ! -f "$CONFIG" ]; then
        echo "config file '$CONFIG' does not exist" >&2
        exit 2
    fi
    local nnodes=${NNODES:-1} node_rank=${NODE_RANK:-0}
    local work_dir="" prev=""
    for arg in "$@"; do  # the log dir follows --work-dir like the runner's own work_dir
        case "$arg" in
            --work-dir=*) work_dir=${arg#--work-dir=} ;;
        esac
        [ "$prev" = "--work-dir" ] && work_dir=$arg
        prev=$arg
    done
    if [ -z "$work_dir" ]; then
        local stem
        stem=$(basename "$CONFIG")
        work_dir="work_dirs/${stem%.py}"
    fi
    local log_dir=${LOG_DIR:-$work_dir/msrun_logs}
    mkdir -p "$log_dir"
    # Errors only from MindSpore's C++ side unless the user asks for more (its TCP retries are very chatty).
    export GLOG_v=${GLOG_v:-3}
    # The CPU kernels' threads: the machine's cores shared by the local processes (each would take every core).
    local cores
    cores=$(nproc 2>/dev/null || echo 1)
    export EFFNET_MM_NUM_THREADS=${EFFNET_MM_NUM_THREADS:-$(( cores / NPROC > 0 ? cores / NPROC : 1 ))}
    msrun --worker_num=$((nnodes * NPROC)) \
          --local_worker_num="$NPROC" \
          --master_addr="${MASTER_ADDR:-127.0.0.1}" \
          --master_port="${PORT:-29500}" \
          --node_rank="$node_rank" \
          --log_dir="$log_dir" \
          --join=True \
          "$script" "$@" --launcher msrun
}

#!/usr/bin/env bash
# Container entry point. WAN_WORKER_MODE picks the front:
#   runpod (default)  the RunPod serverless handler (handler.py), next to a ComfyUI started here
#   api               the HTTP API (`wan-worker serve`), which starts and watches ComfyUI itself
# With COMFYUI_URL set, that ComfyUI is used and none is started. Arguments go to the front
# (e.g. `start.sh --test_input '{"input": {...}}'` runs one job through the handler and exits).
# DOWNLOAD_MODELS="i2v:lightning[,MODE[:PRESET]...]" downloads missing models first (into
# MODELS_DIR: /runpod-volume/models when a network volume is mounted, else ComfyUI's models).
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${WAN_WORKER_MODE:-runpod}
COMFYUI_PATH=${COMFYUI_PATH:-/opt/comfyui}
COMFYUI_PORT=${COMFYUI_PORT:-8188}
if [ -z "${MODELS_DIR:-}" ]; then
    if [ -d /runpod-volume ]; then
        MODELS_DIR=/runpod-volume/models
    else
        MODELS_DIR=$COMFYUI_PATH/models
    fi
fi
export COMFYUI_PATH COMFYUI_PORT MODELS_DIR

say() { printf 'start.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

case "$MODE" in
runpod | api) ;;
*)
    say "WAN_WORKER_MODE must be 'runpod' (the RunPod handler) or 'api' (the HTTP API), not '$MODE'"
    exit 2
    ;;
esac

# ComfyUI searches MODELS_DIR too, through an extra_model_paths.yaml given on its command line
# (in api mode `wan-worker serve` does the same for the ComfyUI it runs).
MODEL_PATHS_FILE=${TMPDIR:-/tmp}/wan-worker-comfyui/extra_model_paths.yaml
write_model_paths() {
    python - "$MODEL_PATHS_FILE" "$MODELS_DIR" <<'EOF'
import sys
from pathlib import Path

from wan_worker.models.paths import write_extra_model_paths

write_extra_model_paths(Path(sys.argv[1]), [Path(root) for root in sys.argv[2:]])
EOF
}

# Start ComfyUI in the background and poll /system_stats until it answers (or it dies, or the
# COMFYUI_READY_TIMEOUT_S deadline passes).
start_comfyui() {
    local url="http://127.0.0.1:$COMFYUI_PORT"
    local timeout=${COMFYUI_READY_TIMEOUT_S:-120}
    timeout=${timeout%.*}
    local folders=()
    if [ -n "${COMFYUI_INPUT_DIR:-}" ]; then
        folders+=(--input-directory "$COMFYUI_INPUT_DIR")
    fi
    if [ -n "${COMFYUI_OUTPUT_DIR:-}" ]; then
        folders+=(--output-directory "$COMFYUI_OUTPUT_DIR")
    fi
    if [ "$MODELS_DIR" != "$COMFYUI_PATH/models" ]; then
        write_model_paths
        folders+=(--extra-model-paths-config "$MODEL_PATHS_FILE")
    fi
    say "starting ComfyUI from $COMFYUI_PATH on port $COMFYUI_PORT"
    # shellcheck disable=SC2086 # COMFYUI_ARGS is a list of extra arguments
    "${COMFYUI_PYTHON:-python}" -u "$COMFYUI_PATH/main.py" --listen 127.0.0.1 --port "$COMFYUI_PORT" \
        --disable-auto-launch "${folders[@]}" ${COMFYUI_ARGS:-} &
    local pid=$!
    local deadline=$((SECONDS + timeout))
    until curl -fsS -o /dev/null --max-time 5 "$url/system_stats" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            local status=0
            wait "$pid" || status=$?
            die "ComfyUI exited (status $status) before answering $url/system_stats; its log is above"
        fi
        if ((SECONDS >= deadline)); then
            kill "$pid" 2>/dev/null || true
            die "ComfyUI did not answer $url/system_stats within ${timeout}s; its log is above (raise COMFYUI_READY_TIMEOUT_S for slow disks)"
        fi
        sleep 1
    done
    say "ComfyUI is ready at $url"
    export COMFYUI_URL="$url"
    export COMFYUI_INPUT_DIR=${COMFYUI_INPUT_DIR:-$COMFYUI_PATH/input}
    export COMFYUI_OUTPUT_DIR=${COMFYUI_OUTPUT_DIR:-$COMFYUI_PATH/output}
}

if [ -n "${DOWNLOAD_MODELS:-}" ] && [ -z "${COMFYUI_URL:-}" ]; then
    "$APP_DIR/docker/download-models.sh" "$DOWNLOAD_MODELS" "$MODELS_DIR"
fi

cd "$APP_DIR"
if [ "$MODE" = api ]; then
    export API_HOST=${API_HOST:-0.0.0.0}
    exec wan-worker serve "$@"
fi
if [ -z "${COMFYUI_URL:-}" ]; then
    start_comfyui
fi
exec python -u "$APP_DIR/handler.py" "$@"

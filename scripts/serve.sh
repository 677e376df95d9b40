#!/usr/bin/env bash
# The README's main command: on a GPU machine with internet, install the service, the pinned
# ComfyUI release and the default mode's models, then serve the HTTP API (`wan-worker serve`).
# With COMFYUI_URL set, ComfyUI and its models are someone else's: only the service is installed.
# Safe to run again: each step is skipped when its result is already there.
#
# Environment (all optional):
#   COMFYUI_URL       an existing ComfyUI server; skips the ComfyUI and model steps
#   COMFYUI_PATH      where ComfyUI is cloned (default ./comfyui)
#   MODELS_DIR        where models are downloaded (default $COMFYUI_PATH/models)
#   WAN_MODE          the mode whose models are downloaded (default i2v)
#   WAN_PRESET        its preset (default lightning)
#   VENV              the service's virtual environment (default ./.venv)
#   COMFYUI_VENV      ComfyUI's own one, for PyTorch and its requirements (default
#                     $COMFYUI_PATH/.venv): two environments, so neither moves the other's packages
#   PYTHON            the Python 3.11+ that creates them (default: the newest python3.x found)
#   TORCH_INDEX_URL   the PyTorch wheel index (default: CUDA 13.0 wheels, as ComfyUI advises)
#   COMFYUI_REPO      the ComfyUI git repository
# Arguments are passed to `wan-worker serve` (e.g. --host 0.0.0.0 --port 8000).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENV=${VENV:-$ROOT/.venv}
COMFYUI_VERSION=$(tr -d '[:space:]' <"$ROOT/scripts/comfyui-version")
COMFYUI_REPO=${COMFYUI_REPO:-https://github.com/Comfy-Org/ComfyUI.git}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu130}
WAN_MODE=${WAN_MODE:-i2v}
WAN_PRESET=${WAN_PRESET:-lightning}

say() { printf 'serve.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

find_python() {
    local candidate
    for candidate in ${PYTHON:-python3.13 python3.12 python3.11 python3}; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

make_venv() {
    local venv=$1
    [ -x "$venv/bin/python" ] && return 0
    local python
    python=$(find_python) || die "wan-worker needs Python 3.11 or newer: install it, or set PYTHON to one"
    say "creating the virtual environment $venv with $python"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
}

install_comfyui() {
    if [ ! -f "$COMFYUI_PATH/main.py" ]; then
        say "cloning ComfyUI $COMFYUI_VERSION into $COMFYUI_PATH"
        git clone --depth 1 --branch "$COMFYUI_VERSION" "$COMFYUI_REPO" "$COMFYUI_PATH"
    else
        local found
        found=$(git -C "$COMFYUI_PATH" describe --tags --exact-match 2>/dev/null || echo "an unknown commit")
        [ "$found" = "$COMFYUI_VERSION" ] ||
            say "warning: $COMFYUI_PATH is at $found, not $COMFYUI_VERSION (the tested release); using it as it is"
    fi
    make_venv "$COMFYUI_VENV"
    local stamp="$COMFYUI_VENV/.wan-worker-installed"
    if [ ! -f "$stamp" ] || [ "$COMFYUI_PATH/requirements.txt" -nt "$stamp" ]; then
        say "installing PyTorch ($TORCH_INDEX_URL) and ComfyUI's requirements into $COMFYUI_VENV"
        "$COMFYUI_VENV/bin/python" -m pip install --quiet torch torchvision torchaudio \
            --extra-index-url "$TORCH_INDEX_URL"
        "$COMFYUI_VENV/bin/python" -m pip install --quiet -r "$COMFYUI_PATH/requirements.txt"
        touch "$stamp"
    fi
    export COMFYUI_PYTHON="$COMFYUI_VENV/bin/python"
}

install_service() {
    local stamp="$VENV/.serve-installed"
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        say "installing wan-worker into $VENV"
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT"
        touch "$stamp"
    fi
}

make_venv "$VENV"
install_service
if [ -z "${COMFYUI_URL:-}" ]; then
    command -v nvidia-smi >/dev/null 2>&1 ||
        say "warning: no NVIDIA GPU found (nvidia-smi is missing): ComfyUI would run WAN 2.2 on the CPU, far too slowly"
    COMFYUI_PATH=${COMFYUI_PATH:-$ROOT/comfyui}
    COMFYUI_VENV=${COMFYUI_VENV:-$COMFYUI_PATH/.venv}
    MODELS_DIR=${MODELS_DIR:-$COMFYUI_PATH/models}
    export COMFYUI_PATH MODELS_DIR
    install_comfyui
    "$VENV/bin/wan-worker" models download "$WAN_MODE" --preset "$WAN_PRESET" \
        --dest "$MODELS_DIR" --yes
else
    say "COMFYUI_URL is set: using the ComfyUI at $COMFYUI_URL with its own models"
fi
exec "$VENV/bin/wan-worker" serve "$@"

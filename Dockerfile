# wan-worker on CUDA: the RunPod handler or the HTTP API, next to the pinned ComfyUI release.
#   docker build -t wan-worker .                                       models from a volume
#   docker build -t wan-worker:i2v --build-arg BAKE_MODELS=i2v:lightning .   models in the image
# docker/start.sh picks the front from WAN_WORKER_MODE (runpod, the default, or api).
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

# PyTorch wheels as ComfyUI's README advises for NVIDIA GPUs (CUDA 13.0; a cu128 index suits
# hosts whose driver is older).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG COMFYUI_REPO=https://github.com/Comfy-Org/ComfyUI.git
# Empty: the release in scripts/comfyui-version, the one the graphs were checked against.
ARG COMFYUI_VERSION=
# e.g. "i2v:lightning" or "i2v:lightning,ti2v": models baked into the image; empty: models come
# from a volume (MODELS_DIR, /runpod-volume/models on RunPod) or DOWNLOAD_MODELS at start.
ARG BAKE_MODELS=

# Two virtual environments: ComfyUI's (PyTorch and its pinned requirements) and the service's
# (on PATH), so neither can move a package the other depends on.
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    COMFYUI_PATH=/opt/comfyui \
    COMFYUI_PYTHON=/opt/comfyui-venv/bin/python

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv git curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && python3 -m venv /opt/comfyui-venv

COPY scripts/comfyui-version /opt/comfyui-version
RUN git clone --depth 1 --branch "${COMFYUI_VERSION:-$(cat /opt/comfyui-version)}" \
        "$COMFYUI_REPO" "$COMFYUI_PATH" \
    && "$COMFYUI_PYTHON" -m pip install torch torchvision torchaudio \
        --extra-index-url "$TORCH_INDEX_URL" \
    && "$COMFYUI_PYTHON" -m pip install -r "$COMFYUI_PATH/requirements.txt"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .
COPY handler.py test_input.json ./
COPY docker ./docker
RUN if [ -n "$BAKE_MODELS" ]; then docker/download-models.sh "$BAKE_MODELS" "$COMFYUI_PATH/models"; fi

EXPOSE 8000
CMD ["/app/docker/start.sh"]

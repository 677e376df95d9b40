"""The self-hosted HTTP API: RunPod's endpoint routes over a SQLite job store, on one ComfyUI."""

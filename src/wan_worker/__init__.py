"""wan-worker: WAN 2.2 video generation on ComfyUI."""

__version__ = "0.1.0"

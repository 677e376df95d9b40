"""Talk to ComfyUI: preflight, upload, queue, follow and fetch outputs."""

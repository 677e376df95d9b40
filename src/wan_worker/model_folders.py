"""Which ComfyUI models folder each loader input reads: shared by the graph builders (to list a
graph's model files), the ComfyUI client (to check them) and the model tools (to lay out folders).

No imports and no I/O, so every stage may depend on it.
"""

from __future__ import annotations

LOADER_FOLDERS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("LoraLoader", "lora_name"): "loras",
    ("VAELoader", "vae_name"): "vae",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
}
"""(loader class_type, input name) -> the models folder that lists its choices."""

MODEL_FOLDERS: tuple[str, ...] = tuple(dict.fromkeys(LOADER_FOLDERS.values()))
"""Every models folder a loader above reads, in this order (the layout of a models root)."""

"""What ``GET /system_stats`` says about a ComfyUI server, as typed records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceInfo:
    """One compute device ComfyUI can use (a GPU, or the CPU)."""

    name: str
    type: str
    vram_total: int
    vram_free: int


@dataclass(frozen=True)
class SystemInfo:
    """The server's versions, memory and devices."""

    comfyui_version: str
    python_version: str
    pytorch_version: str
    ram_total: int
    ram_free: int
    devices: tuple[DeviceInfo, ...]

    @classmethod
    def from_system_stats(cls, body: Any) -> SystemInfo:
        """Parse a ``/system_stats`` answer; absent fields read as empty or zero."""
        system = _mapping(_mapping(body).get("system"))
        devices = _mapping(body).get("devices")
        return cls(
            comfyui_version=str(system.get("comfyui_version") or ""),
            python_version=str(system.get("python_version") or ""),
            pytorch_version=str(system.get("pytorch_version") or ""),
            ram_total=_int(system.get("ram_total")),
            ram_free=_int(system.get("ram_free")),
            devices=tuple(
                DeviceInfo(
                    name=str(_mapping(d).get("name") or ""),
                    type=str(_mapping(d).get("type") or ""),
                    vram_total=_int(_mapping(d).get("vram_total")),
                    vram_free=_int(_mapping(d).get("vram_free")),
                )
                for d in (devices if isinstance(devices, list) else [])
            ),
        )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0

"""System information from /system_stats."""

from __future__ import annotations

from wan_worker.comfy.info import DeviceInfo, SystemInfo


def test_system_stats_become_typed_versions_and_devices() -> None:
    info = SystemInfo.from_system_stats(
        {
            "system": {
                "comfyui_version": "0.33.0",
                "python_version": "3.11.7",
                "pytorch_version": "2.5.1",
                "ram_total": 100,
                "ram_free": 40,
            },
            "devices": [{"name": "cuda:0 H200", "type": "cuda", "vram_total": 10, "vram_free": 5}],
        }
    )
    assert info.comfyui_version == "0.33.0"
    assert info.pytorch_version == "2.5.1"
    assert info.devices == (DeviceInfo("cuda:0 H200", "cuda", 10, 5),)


def test_missing_fields_read_as_empty() -> None:
    info = SystemInfo.from_system_stats({"system": None})
    assert info.comfyui_version == ""
    assert info.devices == ()

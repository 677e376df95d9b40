"""Managed ComfyUI settings from the environment: defaults, parsing, and refused values."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wan_worker.errors import InvalidInput
from wan_worker.managed import ManagedComfyUISettings


def test_defaults_run_no_comfyui_and_use_this_interpreter_on_port_8188() -> None:
    settings = ManagedComfyUISettings.from_env({})
    assert settings.comfyui_path is None
    assert not settings.managed
    assert settings.python == sys.executable
    assert settings.port == 8188
    assert settings.url == "http://127.0.0.1:8188"
    assert settings.extra_args == ()
    assert settings.max_restarts == 5
    assert settings.ready_timeout_s == 120.0


def test_every_variable_is_read() -> None:
    settings = ManagedComfyUISettings.from_env(
        {
            "COMFYUI_PATH": "/opt/ComfyUI",
            "COMFYUI_PYTHON": "/opt/ComfyUI/venv/bin/python",
            "COMFYUI_PORT": "8190",
            "COMFYUI_ARGS": "--lowvram --preview-method none --temp-directory '/tmp/comfy temp'",
            "COMFYUI_MAX_RESTARTS": "0",
            "COMFYUI_READY_TIMEOUT_S": "300",
            "COMFYUI_INPUT_DIR": "/data/in",
            "COMFYUI_OUTPUT_DIR": "/data/out",
        }
    )
    assert settings.comfyui_path == Path("/opt/ComfyUI")
    assert settings.python == "/opt/ComfyUI/venv/bin/python"
    assert settings.port == 8190
    assert settings.extra_args == (
        "--lowvram",
        "--preview-method",
        "none",
        "--temp-directory",
        "/tmp/comfy temp",
    )
    assert settings.max_restarts == 0
    assert settings.ready_timeout_s == 300.0
    assert settings.input_dir == Path("/data/in")
    assert settings.output_dir == Path("/data/out")
    assert settings.managed


def test_a_comfyui_url_means_nothing_is_managed_even_with_a_checkout() -> None:
    settings = ManagedComfyUISettings.from_env(
        {"COMFYUI_URL": "http://127.0.0.1:8188", "COMFYUI_PATH": "/opt/ComfyUI"}
    )
    assert settings.external_url == "http://127.0.0.1:8188"
    assert not settings.managed


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("--listen 0.0.0.0", "--listen"),
        ("--listen=0.0.0.0", "--listen"),
        ("--lis 0.0.0.0", "--listen"),
        ("--listen", "--listen"),
        ("--port 9000", "COMFYUI_PORT"),
        ("--po=9000", "COMFYUI_PORT"),
    ],
)
def test_comfyui_args_may_not_move_comfyui_off_loopback_or_its_port(args: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ManagedComfyUISettings.from_env({"COMFYUI_ARGS": args})
    assert says in caught.value.message
    assert [p.field for p in caught.value.problems] == ["COMFYUI_ARGS"]


def test_flags_that_only_start_like_listen_or_port_are_kept() -> None:
    settings = ManagedComfyUISettings.from_env({"COMFYUI_ARGS": "--lowvram --preview-size 256"})
    assert settings.extra_args == ("--lowvram", "--preview-size", "256")


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        ManagedComfyUISettings.from_env(
            {
                "COMFYUI_PORT": "80000",
                "COMFYUI_MAX_RESTARTS": "-1",
                "COMFYUI_ARGS": "--lowvram 'unclosed",
                "COMFYUI_READY_TIMEOUT_S": "soon",
            }
        )
    fields = [str(p.field) for p in caught.value.problems]
    assert sorted(fields) == [
        "COMFYUI_ARGS",
        "COMFYUI_MAX_RESTARTS",
        "COMFYUI_PORT",
        "COMFYUI_READY_TIMEOUT_S",
    ]
    assert caught.value.code == "invalid_input"

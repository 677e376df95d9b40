"""``wan-worker models``: the plain listing, list, verify, and download against a loopback hub."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.models.hub import HubDouble, HubFile, ThreadedHub
from wan_worker import catalogue
from wan_worker.cli import main
from wan_worker.cli.models import ProgressPrinter
from wan_worker.models import DownloadProgress, human_bytes, required_models

I2V_STANDARD = required_models("i2v", "standard")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELS_DIR", "HF_TOKEN", "HF_ENDPOINT", "COMFYUI_PATH"):
        monkeypatch.delenv(name, raising=False)


def _put(root: Path, folder: str, file: str, size: int) -> None:
    """A sparse file of ``size`` bytes: as big as a real model on paper, nothing on disk."""
    path = root / folder / file
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.truncate(size)


# The plain listing, as before the sub-commands


def test_models_lists_every_file_with_folder_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "i2v", "--preset", "lightning"]) == 0
    out = capsys.readouterr().out
    assert "i2v (lightning) loads 6 model files" in out
    assert "models/loras/wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors" in out
    assert "Comfy-Org/Wan_2.1_ComfyUI_repackaged" in out


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "s2v", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["preset"] == "lightning"
    assert {m["folder"] for m in listing["models"]} == {
        "diffusion_models", "loras", "text_encoders", "vae", "audio_encoders",
    }  # fmt: skip


def test_an_unknown_preset_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "ti2v", "--preset", "lightning"]) == 2
    assert "ti2v has no lightning preset" in capsys.readouterr().err


# list and verify


def test_list_shows_present_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vae = catalogue.find("wan_2.1_vae.safetensors")
    assert vae is not None and vae.approx_bytes is not None
    _put(tmp_path, "vae", vae.file, vae.approx_bytes)
    assert main(["models", "list", "i2v", "--preset", "standard", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"models roots: {tmp_path}" in out
    assert "i2v (standard): 1 of 4 files present, 32.89 GB to download" in out
    assert "  present     vae/wan_2.1_vae.safetensors" in out
    assert "  missing     text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors" in out
    assert (
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/"
        "split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors" in out
    )


def test_list_says_when_sizes_are_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "t2v", "--preset", "standard", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "t2v (standard): 0 of 4 files present, 6.51 GB to download + 2 files of unknown size" in out
    )


def test_list_without_a_mode_covers_every_mode_and_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "--dir", str(tmp_path), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    pairs = [(m["mode"], m["preset"]) for m in listing["modes"]]
    assert ("ti2v", "standard") in pairs
    assert ("i2v", "lightning") in pairs
    assert len(pairs) == len(set(pairs)) == 9
    assert listing["ok"] is False


def test_list_with_a_preset_skips_modes_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "--preset", "lightning", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "s2v (lightning)" in out
    assert "ti2v" not in out


def test_verify_fails_with_the_missing_and_wrong_size_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    high = "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"
    for model in I2V_STANDARD:
        if model.file != high:
            _put(tmp_path, model.folder, model.file, model.approx_bytes or 1)
    text_encoder = catalogue.find("umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    assert text_encoder is not None
    _put(tmp_path, text_encoder.folder, text_encoder.file, 1000)
    args = ["models", "verify", "i2v", "--preset", "standard", "--dir", str(tmp_path)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"  missing     diffusion_models/{high}" in out
    assert "  WRONG SIZE  text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors" in out
    assert "(expected about 6.27 GB)" in out
    assert "2 files missing or the wrong size" in out


def test_verify_passes_when_every_file_is_in_one_of_the_roots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    volume, baked = tmp_path / "volume", tmp_path / "baked"
    for index, model in enumerate(I2V_STANDARD):
        _put(volume if index % 2 else baked, model.folder, model.file, model.approx_bytes or 1)
    monkeypatch.setenv("MODELS_DIR", str(volume))
    assert main(["models", "verify", "i2v", "--preset", "standard", "--dir", str(volume)]) == 1
    capsys.readouterr()
    args = ["models", "verify", "i2v", "--preset", "standard", "--json"]
    assert main([*args, "--dir", str(volume), "--dir", str(baked)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert [f["state"] for f in report["modes"][0]["files"]] == ["present"] * 4


def test_verify_reads_models_dir_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    assert main(["models", "verify", "ti2v"]) == 1
    assert f"models roots: {tmp_path}" in capsys.readouterr().out


# download, against the hub double with small stand-ins for the catalogue's files


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubDouble]:
    """Every catalogue file served as a few hundred kB; the catalogue's sizes scaled to match."""
    contents = {
        m.file: os.urandom(100_000 + 1000 * i) for i, m in enumerate(catalogue.all_models())
    }
    small = tuple(
        replace(m, approx_bytes=len(contents[m.file]) if m.approx_bytes else None)
        for m in catalogue.all_models()
    )
    monkeypatch.setattr(catalogue, "all_models", lambda: small)
    files = [HubFile(m.repository, m.path, contents[m.file]) for m in small]
    with ThreadedHub(files) as double:
        monkeypatch.setenv("HF_ENDPOINT", double.url)
        yield double


def test_download_fetches_every_file_then_skips_them(
    hub: HubDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["models", "download", "i2v", "--preset", "standard", "--dest", str(tmp_path), "--yes"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "i2v (standard) needs 4 model files" in out
    models = required_models("i2v", "standard")
    total = sum(m.approx_bytes or 0 for m in models)
    assert f"download: 4 files, {human_bytes(total)}; free in {tmp_path}: " in out
    assert f"downloaded 4 files into {tmp_path}" in out
    for model in models:
        assert (tmp_path / model.folder / model.file).stat().st_size == model.approx_bytes
    assert f"[1/4] {models[0].file} 100.0%" in err
    assert "\r" not in err
    assert len(hub.requests("cdn")) == 4

    assert main(args) == 0
    assert "all files present; nothing to download" in capsys.readouterr().out
    assert len(hub.requests("cdn")) == 4
    assert main(["models", "verify", "i2v", "--preset", "standard", "--dir", str(tmp_path)]) == 0


def test_download_json_reports_what_was_fetched(
    hub: HubDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lora = "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"
    entry = catalogue.find(lora)
    assert entry is not None and entry.approx_bytes is not None
    _put(tmp_path, "loras", lora, entry.approx_bytes)
    args = ["models", "download", "flf2v", "--dest", str(tmp_path), "--yes", "--json"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["preset"] == "lightning"
    assert report["present"] == [f"loras/{lora}"]
    assert len(report["downloaded"]) == 5
    assert "flf2v (lightning) needs 6 model files" in err


def test_download_fetches_extra_catalogue_files_too(
    hub: HubDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bf16 = "wan2.2_s2v_14B_bf16.safetensors"
    args = ["models", "download", "s2v", "--file", bf16, "--dest", str(tmp_path), "--yes"]
    assert main(args) == 0
    assert "s2v (lightning) needs 6 model files" in capsys.readouterr().out
    assert (tmp_path / "diffusion_models" / bf16).is_file()


def test_an_unknown_extra_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["models", "download", "s2v", "--file", "nope.safetensors", "--dest", str(tmp_path)]
    assert main(args) == 2
    assert "nope.safetensors is not a catalogue file; --file takes one of:" in (
        capsys.readouterr().err
    )


def test_download_asks_on_a_terminal_and_a_no_fetches_nothing(
    hub: HubDouble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert main(["models", "download", "ti2v", "--dest", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "? [y/N] nothing downloaded" in out
    assert hub.requests("cdn") == []


def test_a_file_missing_on_the_hub_is_exit_3(
    hub: HubDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.files = [f for f in hub.files if not f.path.endswith("wan2.2_vae.safetensors")]
    assert main(["models", "download", "ti2v", "--dest", str(tmp_path), "--yes"]) == 3
    err = capsys.readouterr().err
    assert "error: download_failed: could not read wan2.2_vae.safetensors from the hub" in err
    assert hub.requests("cdn") == []


# progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _feed(printer: ProgressPrinter, total: int, step: int) -> None:
    for done in range(0, total + 1, step):
        printer(DownloadProgress("a.safetensors", done, total, 1, 2))


def test_progress_off_a_terminal_is_a_plain_line_every_ten_percent() -> None:
    stream = _Stream(tty=False)
    _feed(ProgressPrinter(stream), 1_000_000, 10_000)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[0] == "[1/2] a.safetensors   0.0% (0 B of 1.0 MB)"
    assert lines[-1] == "[1/2] a.safetensors 100.0% (1.0 MB of 1.0 MB)"


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    stream = _Stream(tty=True)
    _feed(ProgressPrinter(stream), 1_000_000, 250_000)
    text = stream.getvalue()
    assert text.count("\r") == 5
    assert text.endswith("100.0% (1.0 MB of 1.0 MB)\n")
    assert text.count("\n") == 1


def test_progress_says_when_it_waits_for_another_download() -> None:
    stream = _Stream(tty=False)
    ProgressPrinter(stream)(DownloadProgress("a.safetensors", 0, 10, 1, 2, waiting=True))
    assert stream.getvalue() == (
        "[1/2] a.safetensors: another download of this file is running; waiting for it\n"
    )

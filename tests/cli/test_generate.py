"""``wan-worker generate`` in-process (``--comfyui``) against the ComfyUI double: every mode's
MP4, progress, the summary, ``--json``, exit statuses 2, 3 and 4, Ctrl-C, and file naming."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import (
    IMAGE,
    MODE_INPUTS,
    SMALL,
    VOICE,
    CliRun,
    names,
    no_new_files,
    run_cli,
    run_main,
)
from wan_worker.delivery import probe_video
from wan_worker.testing import ComfyUIDouble

RESULT_FIELDS = {
    "file",
    "via",
    "job_id",
    "action",
    "prompt_id",
    "delivery",
    "video_info",
    "seed",
    "parameters",
    "inputs",
    "timings",
    "models",
    "comfyui_version",
}


@pytest.mark.parametrize("mode", list(MODE_INPUTS))
async def test_each_mode_saves_an_mp4_of_the_requested_size_and_length(
    mode: str,
    comfy: ComfyUIDouble,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = out_dir / f"{mode}.mp4"
    frames = [] if mode == "s2v" else ["--frames", "9"]
    run = await run_main(
        [
            *("generate", mode, *MODE_INPUTS[mode], *SMALL, *frames, "--seed", "7"),
            *("--prompt", "waves below a lighthouse", "--comfyui", comfy.url),
            *("-o", str(output), "--json"),
        ],
        capsys,
    )

    assert run.status == 0, run.stderr
    result = json.loads(run.stdout)
    assert set(result) == RESULT_FIELDS
    assert (result["file"], result["via"], result["seed"]) == (str(output.resolve()), "comfyui", 7)
    assert result["action"] == f"comfyui_{mode}"
    info = probe_video(output)
    assert (info.width, info.height) == (320, 192)
    assert info.frames == result["parameters"]["frames"] == result["video_info"]["frames"]
    if mode == "s2v":
        # 2.5 s of voice at 16 fps: one chunk, cut to the audio's length by the template.
        assert info.has_audio and result["inputs"]["audio"]["duration_s"] == 2.5
    else:
        assert info.frames == 9
    assert "sampling" in run.stderr
    assert names(out_dir) == [output.name]


async def test_plain_stdout_gets_progress_lines_then_a_summary(
    comfy: ComfyUIDouble, out_dir: Path, cli_env: dict[str, str]
) -> None:
    run = await run_cli(
        [
            *("generate", "i2v", IMAGE, *SMALL, "--frames", "9", "--seed", "42"),
            *("--comfyui", comfy.url, "-o", str(out_dir)),
        ],
        env=cli_env,
    )

    assert run.status == 0, run.stderr
    lines = run.stdout.splitlines()
    steps = [line for line in lines if line.startswith("sampling") and "step 2/2" in line]
    assert steps and all("elapsed" in line and "eta" in line for line in steps)
    assert not any("\r" in line for line in lines)
    assert any(line.startswith("inputs") for line in lines)
    assert lines[lines.index(f"saved {out_dir / 'i2v-42.mp4'}") :] == [
        f"saved {out_dir / 'i2v-42.mp4'}",
        "  resolution  320x192",
        "  frames      9 at 16 fps",
        "  duration    0.56 s",
        *[line for line in lines if line.startswith("  size")],
        "  seed        42",
        *[line for line in lines if line.startswith("  time")],
    ]
    assert probe_video(out_dir / "i2v-42.mp4").frames == 9


async def test_a_terminal_gets_one_progress_line_redrawn_in_place(
    comfy: ComfyUIDouble, out_dir: Path, cli_env: dict[str, str]
) -> None:
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wan_worker.cli",
        *("generate", "i2v", IMAGE, *SMALL, "--frames", "5", "--seed", "4"),
        *("--comfyui", comfy.url, "-o", str(out_dir)),
        stdout=follower,
        stderr=asyncio.subprocess.PIPE,
        env={**cli_env, "COLUMNS": "120"},
    )
    os.close(follower)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # EIO: the process closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reading = asyncio.create_task(asyncio.to_thread(drain))
    try:
        async with asyncio.timeout(60):
            _, stderr = await process.communicate()
            await reading
    finally:
        os.close(leader)
    text = b"".join(chunks).decode()

    assert process.returncode == 0, stderr.decode()
    progress, summary = text.split("\nsaved ", 1)
    assert "\n" not in progress.rstrip("\r")
    assert progress.count("\r[") >= 5
    assert "[####################] saved" in progress
    assert summary.startswith(str(out_dir / "i2v-4.mp4"))


async def test_a_default_name_never_overwrites_and_an_explicit_one_needs_force(
    comfy: ComfyUIDouble,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["generate", "t2v", *SMALL, "--frames", "5", "--seed", "3", "--comfyui", comfy.url]
    first = await run_main([*args, "-o", str(out_dir)], capsys)
    second = await run_main([*args, "-o", str(out_dir)], capsys)
    assert (first.status, second.status) == (0, 0)
    assert names(out_dir) == ["t2v-3-2.mp4", "t2v-3.mp4"]

    taken = out_dir / "t2v-3.mp4"
    before = taken.read_bytes()
    with no_new_files(out_dir):
        refused = await run_main([*args, "-o", str(taken)], capsys)
    assert refused.status == 2
    assert "exists" in refused.stderr and "--force" in refused.stderr
    assert taken.read_bytes() == before
    assert len(comfy.received_prompts) == 2

    forced = await run_main([*args, "--frames", "9", "-o", str(taken), "--force"], capsys)
    assert forced.status == 0, forced.stderr
    assert probe_video(taken).frames == 9


@pytest.mark.parametrize(
    "case",
    [
        (["i2v", "missing.png"], "image", "does not exist"),
        (["i2v"], "inputs", "i2v takes IMAGE"),
        (["t2v", "--frames", "0"], "frames", "greater than or equal to 1"),
        (["flf2v", IMAGE, IMAGE, "--preset", "turbo"], "preset", "preset"),
        (["t2v", "--poll-interval", "0"], "poll_interval", "more than 0 seconds"),
    ],
)
async def test_invalid_input_exits_2_naming_the_field(
    case: tuple[list[str], str, str],
    comfy: ComfyUIDouble,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, field, words = case
    with no_new_files(out_dir):
        run = await run_main(
            ["generate", *args, "--comfyui", comfy.url, "-o", str(out_dir), "--json"], capsys
        )
    assert run.status == 2
    error = json.loads(run.stdout)
    assert error["error_code"] == "invalid_input"
    assert error["details"]["field"] == field
    assert words in run.stderr
    assert comfy.received_prompts == []


async def test_an_input_over_the_cap_or_not_a_file_exits_2(
    comfy: ComfyUIDouble,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INPUT_MAX_AUDIO_BYTES", "1000")
    args = ["--comfyui", comfy.url, "-o", str(out_dir), "--json"]
    with no_new_files(out_dir):
        too_large = await run_main(["generate", "s2v", IMAGE, VOICE, *args], capsys)
        folder = await run_main(["generate", "i2v", str(out_dir), *args], capsys)

    assert (too_large.status, folder.status) == (2, 2)
    error = json.loads(too_large.stdout)
    assert (error["error_code"], error["details"]["field"]) == ("input_too_large", "audio")
    assert "over the 1000-byte cap" in too_large.stderr
    assert f"the image file {out_dir} is not a file" in folder.stderr
    assert comfy.received_prompts == []


async def test_an_output_that_cannot_be_written_exits_2(
    comfy: ComfyUIDouble,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (out_dir / "file").write_bytes(b"")
    with no_new_files(out_dir):
        run = await run_main(
            ["generate", "t2v", "--comfyui", comfy.url, "-o", str(out_dir / "file" / "x.mp4")],
            capsys,
        )
    assert run.status == 2
    assert f"cannot make the folder {out_dir / 'file'}" in run.stderr
    assert comfy.received_prompts == []


async def test_argparse_refusals_exit_2_too(
    comfy: ComfyUIDouble, cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        await run_main(["generate", "t2v", "--frames", "many", "--comfyui", comfy.url], capsys)
    assert stopped.value.code == 2
    assert "--frames" in capsys.readouterr().err


async def test_a_failing_node_exits_3_naming_it(
    comfy: ComfyUIDouble,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    comfy.faults.fail_at_node = "sampler_low_noise"
    comfy.faults.fail_message = "CUDA out of memory"
    with no_new_files(out_dir):
        run = await run_main(
            [
                *("generate", "i2v", IMAGE, *SMALL, "--frames", "5", "--comfyui", comfy.url),
                *("-o", str(out_dir / "x.mp4"), "--json"),
            ],
            capsys,
        )
    assert run.status == 3
    error = json.loads(run.stdout)
    assert error["error_code"] == "execution_failed"
    assert error["details"]["node_id"] == "sampler_low_noise"
    assert "CUDA out of memory" in run.stderr


async def test_an_unreachable_comfyui_exits_3(
    comfy: ComfyUIDouble, out_dir: Path, cli_env: dict[str, str]
) -> None:
    url = comfy.url
    await comfy.stop()
    with no_new_files(out_dir):
        run = await run_cli(["generate", "t2v", "--comfyui", url, "-o", str(out_dir)], env=cli_env)
    assert run.status == 3
    assert "comfyui_unavailable" in run.stderr
    assert "Traceback" not in run.stderr


async def test_a_deadline_exits_4_and_interrupts_the_prompt(
    comfy: ComfyUIDouble,
    out_dir: Path,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    comfy.faults.step_delay = 5.0
    with no_new_files(out_dir):
        run = await run_main(
            [
                *("generate", "t2v", *SMALL, "--frames", "5", "--timeout", "2"),
                *("--comfyui", comfy.url, "-o", str(out_dir)),
            ],
            capsys,
        )
    assert run.status == 4
    assert "timeout:" in run.stderr
    # Sampling takes 20 s here: any prompt that reached ComfyUI before the deadline was
    # interrupted (on a slow machine the deadline may pass before one is queued).
    assert len(comfy.interrupts) == len(comfy.received_prompts)


async def test_ctrl_c_cancels_the_prompt_and_exits_4_without_a_traceback(
    comfy: ComfyUIDouble, out_dir: Path, cli_env: dict[str, str]
) -> None:
    comfy.faults.step_delay = 5.0
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wan_worker.cli",
        *["generate", "t2v", *SMALL, "--frames", "5", "--comfyui", comfy.url],
        *["-o", str(out_dir / "never.mp4")],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env,
    )
    assert process.stdout is not None and process.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(60):
        while not any(line.startswith("sampling") for line in seen):
            line = await process.stdout.readline()
            assert line, "the progress stopped before sampling"
            seen.append(line.decode())
        process.send_signal(signal.SIGINT)
        rest, stderr = await process.communicate()
    run = CliRun(process.returncode or 0, "".join(seen) + rest.decode(), stderr.decode())

    assert run.status == 4
    assert "cancelled" in run.stderr and "Ctrl-C" in run.stderr
    assert "Traceback" not in run.stderr
    assert comfy.interrupts
    assert names(out_dir) == []

"""The deployment docs stay true: every error code has its section, the generated input
reference matches the schema, and every path and link they name exists."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest

from tests.deploy.fakes import REPO_ROOT
from wan_worker.errors import ERROR_CODES
from wan_worker.service import request_json_schema

DOCS = REPO_ROOT / "docs"
OWN_DOCS = ["architecture.md", "deployment.md", "performance.md", "troubleshooting.md"]
REFERENCE = DOCS / "input-reference.md"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    path = REPO_ROOT / "scripts" / "gen_input_reference.py"
    spec = importlib.util.spec_from_file_location("gen_input_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def sections(text: str, level: str = "## ") -> dict[str, str]:
    """Heading -> body for each heading of ``level`` (outside code blocks)."""
    out: dict[str, str] = {}
    current: str | None = None
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith(level):
            current = line[len(level) :].strip()
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


def test_troubleshooting_has_a_section_for_every_error_code() -> None:
    found = sections((DOCS / "troubleshooting.md").read_text())
    codes = [*ERROR_CODES, "internal_error"]
    assert sorted(found) == sorted(f"`{code}`" for code in codes)
    for code in codes:
        body = found[f"`{code}`"]
        assert "**Meaning.**" in body, code
        assert "**What to do.**" in body, code


def test_the_committed_input_reference_is_generated_from_the_current_schema(
    generator: ModuleType,
) -> None:
    assert REFERENCE.read_text(encoding="utf-8") == generator.render(request_json_schema()), (
        "docs/input-reference.md is stale: run .venv/bin/python scripts/gen_input_reference.py"
    )


def test_the_input_reference_lists_every_field_of_every_action(generator: ModuleType) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    schema = request_json_schema()
    for branch in schema["oneOf"]:
        for name in branch["properties"]:
            assert f"| `{name}` |" in text, (branch["title"], name)
    for name in schema["$defs"]:
        assert f"### {name}" in text


def test_the_generator_checks_without_writing(generator: ModuleType) -> None:
    assert generator.main(["--check"]) == 0


def test_performance_figures_are_marked_as_estimates_per_gpu_and_preset() -> None:
    text = (DOCS / "performance.md").read_text()
    assert "estimate, not a measurement" in text
    table = sections(text)["Expected time per video (estimates)"]
    header = next(line for line in table.splitlines() if line.startswith("| GPU"))
    for preset in ("lightning", "standard"):
        assert preset in header
    for gpu in ("H100", "A100", "L40S", "RTX 4090"):
        assert re.search(rf"^\| {gpu}\b", table, re.MULTILINE), gpu
    assert "timings" in sections(text)["How to measure"]


def test_the_architecture_has_one_diagram_of_the_whole_flow() -> None:
    text = (DOCS / "architecture.md").read_text()
    diagrams = re.findall(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert len(diagrams) == 1
    for stage in ("schema", "media", "workflows", "comfy", "delivery", "store", "runner",
                  "webhooks"):  # fmt: skip
        assert stage in diagrams[0], stage


@pytest.mark.parametrize("doc", OWN_DOCS)
def test_every_repository_path_a_doc_names_exists(doc: str) -> None:
    text = (DOCS / doc).read_text()
    named = re.findall(r"`((?:src|scripts|docker|benchmarks|\.runpod|samples)/[^`*<> ]+)`", text)
    assert named or doc == "performance.md"
    for path in named:
        assert (REPO_ROOT / path.rstrip("/")).exists(), f"{doc} names {path}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("doc", [*OWN_DOCS, "input-reference.md"])
def test_every_relative_link_resolves(doc: str) -> None:
    text = (DOCS / doc).read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        file_part, _, anchor = target.partition("#")
        linked = DOCS / file_part if file_part else DOCS / doc
        assert linked.exists(), f"{doc} links to missing {file_part}"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"{doc} links to missing #{anchor}"

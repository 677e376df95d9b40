"""Which catalogue files a mode and preset need: read off the graph the builder makes."""

from __future__ import annotations

from typing import Any

from wan_worker import catalogue
from wan_worker.catalogue import ModelFile
from wan_worker.workflows import BuiltWorkflow, build


def required_models(mode: str, preset: str | None = None) -> list[ModelFile]:
    """Exactly the files the default graph of ``mode`` (and ``preset``) loads, in graph order.

    Derived from the built graph, so the list can never drift from what the builders reference.
    Raises the builders' errors for an unknown mode or a preset the mode lacks.
    """
    models: list[ModelFile] = []
    for ref in _default_graph(mode, preset).models:
        entry = catalogue.find(ref.file)
        if entry is None or entry.folder != ref.folder:
            raise LookupError(f"{ref.folder}/{ref.file} is loaded by {mode} but not catalogued")
        models.append(entry)
    return models


def effective_preset(mode: str, preset: str | None = None) -> str:
    """The preset a mode's graph uses for ``preset`` (``None``: the mode's default preset)."""
    return _default_graph(mode, preset).settings.preset


def _default_graph(mode: str, preset: str | None) -> BuiltWorkflow:
    params: dict[str, Any] = {} if preset is None else {"preset": preset}
    if mode == "s2v":
        params.update(audio="audio.wav", chunks=1)
    return build(mode, params)

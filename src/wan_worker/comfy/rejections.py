"""ComfyUI's validation and execution errors, turned into this project's errors in plain words.

The same mapping serves both the preflight (issues found locally from ``/object_info``) and the
server's own refusal of ``POST /prompt``, so a graph fails the same way whichever catches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from wan_worker.comfy.schema import MODEL_FOLDERS, GraphIssue, node_pack_for
from wan_worker.errors import (
    ExecutionFailed,
    MissingModels,
    MissingNodes,
    Problem,
    ValidationFailed,
    WanWorkerError,
)

ModelSource = Callable[[str], str | None]
"""Where a model file can be downloaded from (a URL or a hint), or None when unknown."""

_SHORT_LIST = 12


def issues_from_rejection(body: Mapping[str, Any]) -> list[GraphIssue]:
    """The issues in a ``POST /prompt`` answer: the graph-level error or every node error."""
    issues: list[GraphIssue] = []
    node_errors = body.get("node_errors")
    if isinstance(node_errors, Mapping):
        for node_id, entry in node_errors.items():
            if not isinstance(entry, Mapping):
                continue
            class_type = entry.get("class_type")
            for raw in entry.get("errors") or []:
                if isinstance(raw, Mapping):
                    issues.append(_issue(raw, str(node_id), class_type))
    error = body.get("error")
    if not issues and isinstance(error, Mapping):
        extra = error.get("extra_info") if isinstance(error.get("extra_info"), Mapping) else {}
        node_id = extra.get("node_id") if isinstance(extra, Mapping) else None
        class_type = extra.get("class_type") if isinstance(extra, Mapping) else None
        issues.append(_issue(error, None if node_id is None else str(node_id), class_type))
    return issues


def _issue(raw: Mapping[str, Any], node_id: str | None, class_type: Any) -> GraphIssue:
    extra = raw.get("extra_info")
    extra = dict(extra) if isinstance(extra, Mapping) else {}
    input_name = extra.get("input_name")
    return GraphIssue(
        kind=str(raw.get("type") or "unknown"),
        message=str(raw.get("message") or ""),
        node_id=node_id,
        class_type=None if class_type is None else str(class_type),
        input_name=None if input_name is None else str(input_name),
        details=str(raw.get("details") or ""),
        extra_info=extra,
    )


def graph_error(
    issues: Iterable[GraphIssue],
    *,
    model_source: ModelSource | None = None,
    source: str = "ComfyUI",
) -> WanWorkerError:
    """The one error for a refused graph: missing nodes first, then missing models, else invalid."""
    issues = list(issues)
    missing_nodes = [i for i in issues if i.kind == "missing_node_type"]
    if missing_nodes:
        return _missing_nodes(missing_nodes)
    missing_models = [i for i in issues if model_folder(i) is not None]
    if missing_models:
        return _missing_models(missing_models, issues, model_source)
    problems = [_problem(i, model_source) for i in issues]
    count = len(problems)
    summary = "; ".join(p.message for p in problems[:3]) + ("; …" if count > 3 else "")
    return ValidationFailed(
        f"{source} rejected the graph ({count} problem{'s' if count != 1 else ''}): {summary}",
        problems=problems,
    )


def model_folder(issue: GraphIssue) -> str | None:
    """The models folder when ``issue`` is a model file the server does not list."""
    if issue.kind != "value_not_in_list" or issue.class_type is None or issue.input_name is None:
        return None
    return MODEL_FOLDERS.get((issue.class_type, issue.input_name))


def _missing_nodes(issues: list[GraphIssue]) -> MissingNodes:
    problems: list[Problem] = []
    for issue in issues:
        class_type = issue.class_type
        if class_type is None:
            message = f"node {issue.node_id} has no class_type"
            problems.append(Problem(message, node_id=issue.node_id, rule=issue.kind))
            continue
        pack = node_pack_for(class_type)
        where = f" (install the custom node pack {pack})" if pack else ""
        problems.append(
            Problem(
                f"node {issue.node_id}: node type {class_type} is not installed{where}",
                node_id=issue.node_id,
                class_type=class_type,
                rule=issue.kind,
                suggestion=pack,
            )
        )
    names = sorted({i.class_type for i in issues if i.class_type})
    labels = [f"{n} (from {node_pack_for(n)})" if node_pack_for(n) else n for n in names]
    return MissingNodes(
        "ComfyUI lacks node types the graph needs: " + (", ".join(labels) or "(unnamed node)"),
        problems=problems,
        details={"class_types": names},
    )


def _missing_models(
    issues: list[GraphIssue], every_issue: list[GraphIssue], model_source: ModelSource | None
) -> MissingModels:
    """Missing model files; other problems of the graph are listed after them."""
    problems = [_problem(i, model_source) for i in issues]
    problems += [_problem(i, model_source) for i in every_issue if i not in issues]
    files = sorted(
        {f"{i.extra_info.get('received_value', '')} (models/{model_folder(i)})" for i in issues}
    )
    return MissingModels(
        "ComfyUI lacks model files the graph needs: " + ", ".join(files),
        problems=problems,
        details={
            "models": [
                {
                    "file": str(i.extra_info.get("received_value", "")),
                    "folder": model_folder(i),
                    "download": model_source(str(i.extra_info.get("received_value", "")))
                    if model_source
                    else None,
                }
                for i in issues
            ]
        },
    )


def _problem(issue: GraphIssue, model_source: ModelSource | None) -> Problem:
    where = f"node {issue.node_id} ({issue.class_type})" if issue.node_id else "the graph"
    return Problem(
        f"{where}: {plain_words(issue, model_source)}",
        field=issue.input_name,
        value=issue.extra_info.get("received_value"),
        rule=issue.kind,
        suggestion=_suggestion(issue, model_source),
        node_id=issue.node_id,
        class_type=issue.class_type,
    )


def plain_words(issue: GraphIssue, model_source: ModelSource | None = None) -> str:
    """One sentence about one issue, without the node prefix."""
    extra = issue.extra_info
    name = issue.input_name or "?"
    value = extra.get("received_value")
    config = extra.get("input_config")
    options = config[1] if isinstance(config, list) and len(config) > 1 else {}
    options = options if isinstance(options, Mapping) else {}
    kind = issue.kind
    folder = model_folder(issue)
    if folder is not None:
        hint = model_source(str(value)) if model_source else None
        where = f"; download it from {hint}" if hint else ""
        return f"model file {value!s} is not in the server's models/{folder} folder{where}"
    if kind == "required_input_missing":
        return f"required input '{name}' is missing"
    if kind == "return_type_mismatch":
        expected = config[0] if isinstance(config, list) and config else "?"
        received = extra.get("received_type", "?")
        return f"input '{name}' is linked to an output of type {received}, but needs {expected}"
    if kind == "value_smaller_than_min":
        return f"input '{name}' is {value}, below the minimum {options.get('min', '?')}"
    if kind == "value_bigger_than_max":
        return f"input '{name}' is {value}, above the maximum {options.get('max', '?')}"
    if kind == "value_not_in_list":
        return f"input '{name}' is {value!r}, which is not one of its allowed values"
    if kind == "invalid_input_type":
        expected = config[0] if isinstance(config, list) and config else "the declared type"
        return f"input '{name}' must be {expected}, not {value!r}"
    if kind in ("exception_during_inner_validation", "exception_during_validation"):
        return (
            "a link into this node points at a node or output that does not exist "
            f"({extra.get('exception_type', 'error')}: {issue.details})"
        )
    if kind == "custom_validation_failed":
        detail = issue.details.split(" - ", 1)[-1] if issue.details else issue.message
        return f"input '{name}': {detail}"
    if kind == "prompt_no_outputs":
        return "the graph has no output node (nothing would be saved)"
    text = issue.message or kind
    return f"{text}: {issue.details}" if issue.details else text


def _suggestion(issue: GraphIssue, model_source: ModelSource | None) -> Any:
    value = issue.extra_info.get("received_value")
    if model_folder(issue) is not None:
        return model_source(str(value)) if model_source else None
    config = issue.extra_info.get("input_config")
    if issue.kind == "value_not_in_list" and isinstance(config, list) and config:
        choices = config[0] if isinstance(config[0], list) else None
        if choices is None and len(config) > 1 and isinstance(config[1], Mapping):
            choices = config[1].get("options")
        if isinstance(choices, list) and len(choices) <= _SHORT_LIST:
            return choices
    if issue.kind in ("value_smaller_than_min", "value_bigger_than_max"):
        options = config[1] if isinstance(config, list) and len(config) > 1 else {}
        if isinstance(options, Mapping):
            bound = "min" if issue.kind == "value_smaller_than_min" else "max"
            return options.get(bound)
    return None


def execution_error(data: Mapping[str, Any]) -> ExecutionFailed:
    """The error for an ``execution_error`` event; the traceback stays out (it is logged)."""
    node_id = str(data.get("node_id", "?"))
    node_type = str(data.get("node_type", "?"))
    exc_type = str(data.get("exception_type", "Exception"))
    exc_message = str(data.get("exception_message", "")).strip()
    return ExecutionFailed(
        f"node {node_id} ({node_type}) failed: {exc_type}: {exc_message}",
        problems=[
            Problem(
                f"{exc_type}: {exc_message}", node_id=node_id, class_type=node_type, rule=exc_type
            )
        ],
        details={
            "prompt_id": data.get("prompt_id"),
            "node_id": node_id,
            "node_type": node_type,
            "exception_type": exc_type,
            "exception_message": exc_message,
        },
    )

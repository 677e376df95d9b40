"""ComfyUI node schemas read from ``/object_info``, and ComfyUI's own graph validation.

``validate_graph`` follows the checks of ComfyUI's ``execution.validate_prompt`` in their order
and with their texts, so a graph can be checked before it is posted and the test double can
answer ``POST /prompt`` with the bodies a real server sends.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wan_worker.model_folders import LOADER_FOLDERS

MODEL_FOLDERS = LOADER_FOLDERS
"""Which ComfyUI models folder lists the choices of a loader input."""

MODEL_EXTENSIONS = frozenset(
    {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
)
"""The extensions ComfyUI lists in a models folder; other files are invisible to the loaders."""

# Choices a server appends after the folder's files (nodes.py VAELoader.vae_list).
_MODEL_LIST_EXTRAS: dict[tuple[str, str], tuple[str, ...]] = {
    ("VAELoader", "vae_name"): ("pixel_space",),
}

NODE_PACKS: dict[str, str] = {
    "VHS_": "ComfyUI-VideoHelperSuite",
    "DWPreprocessor": "comfyui_controlnet_aux",
    "PixelPerfectResolution": "comfyui_controlnet_aux",
    "PointsEditor": "ComfyUI-KJNodes",
    "DrawMaskOnImage": "ComfyUI-KJNodes",
    "BlockifyMask": "ComfyUI-KJNodes",
    "DownloadAndLoadSAM2Model": "ComfyUI-segment-anything-2",
    "Sam2Segmentation": "ComfyUI-segment-anything-2",
}
"""Class-type prefix -> the custom node pack that provides it (core nodes are absent)."""

# Input files that a node checks exist in input/ (its VALIDATE_INPUTS), with the content
# types its choice list shows and the sentence it fails with.
_FILE_INPUTS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("LoadImage", "image"): (("image",), "Invalid image file: {}"),
    ("LoadAudio", "audio"): (("audio", "video"), "Invalid audio file: {}"),
    ("LoadVideo", "file"): (("video",), "Invalid video file: {}"),
}

FILE_INPUTS: tuple[tuple[str, str], ...] = tuple(_FILE_INPUTS)
"""(class_type, input_name) of the inputs that name a file in the server's input/ folder."""

COMBO = "COMBO"
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"


def node_pack_for(class_type: str) -> str | None:
    """The custom node pack that provides ``class_type``, or None for core or unknown nodes."""
    best: tuple[int, str] | None = None
    for prefix, pack in NODE_PACKS.items():
        if class_type.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), pack)
    return best[1] if best else None


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a node class, as ``/object_info`` describes it.

    ``type`` is a widget type (INT, FLOAT, STRING, BOOLEAN), ``COMBO`` for both choice
    spellings, ``COMFY_DYNAMICCOMBO_V3``, or a link type (MODEL, IMAGE, ``*``...).
    ``config`` is the spec as ComfyUI echoes it in errors (``input_config``).
    """

    name: str
    type: str
    required: bool
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    default: Any = None
    dynamic_options: Mapping[str, Mapping[str, InputSpec]] | None = None
    config: tuple[Any, Mapping[str, Any]] = ("*", {})

    def with_choices(self, choices: Sequence[Any]) -> InputSpec:
        """A copy offering ``choices``, in whichever spelling the schema used."""
        kind, options = self.config
        if isinstance(kind, list):
            config: tuple[Any, Mapping[str, Any]] = (list(choices), options)
        else:
            config = (kind, {**options, "options": list(choices)})
        return replace(self, choices=tuple(choices), config=config)


@dataclass(frozen=True)
class NodeSchema:
    """A node class: its inputs (required and optional, in server order), outputs and role."""

    class_type: str
    inputs: Mapping[str, InputSpec]
    outputs: tuple[str, ...]
    output_node: bool

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.inputs.items() if spec.required)


def _parse_input(name: str, raw: Any, required: bool) -> InputSpec:
    spec = list(raw) if isinstance(raw, list | tuple) else [raw]
    kind = spec[0] if spec else "*"
    options: Mapping[str, Any] = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    config = (kind, options)
    common: dict[str, Any] = {
        "name": name,
        "required": required,
        "min": options.get("min"),
        "max": options.get("max"),
        "default": options.get("default"),
        "config": config,
    }
    if isinstance(kind, list):
        return InputSpec(type=COMBO, choices=tuple(kind), **common)
    if kind == COMBO:
        return InputSpec(type=COMBO, choices=tuple(options.get("options", ())), **common)
    if kind == DYNAMIC_COMBO:
        nested: dict[str, Mapping[str, InputSpec]] = {}
        for option in options.get("options", ()):
            section = option.get("inputs", {})
            nested[str(option["key"])] = {
                f"{name}.{sub}": _parse_input(f"{name}.{sub}", sub_raw, category == "required")
                for category in ("required", "optional")
                for sub, sub_raw in section.get(category, {}).items()
            }
        return InputSpec(
            type=DYNAMIC_COMBO, choices=tuple(nested), dynamic_options=nested, **common
        )
    return InputSpec(type=str(kind), **common)


def _parse_node(class_type: str, info: Mapping[str, Any]) -> NodeSchema:
    declared = info.get("input", {})
    inputs: dict[str, InputSpec] = {}
    for category in ("required", "optional"):
        for name, raw in (declared.get(category) or {}).items():
            inputs[name] = _parse_input(name, raw, category == "required")
    return NodeSchema(
        class_type=class_type,
        inputs=inputs,
        outputs=tuple(str(t) if not isinstance(t, list) else COMBO for t in info.get("output", ())),
        output_node=bool(info.get("output_node", False)),
    )


def _content_kind(filename: str) -> str | None:
    mime, _ = mimetypes.guess_type(filename, strict=False)
    return mime.split("/")[0] if mime else None


@dataclass(frozen=True)
class NodeSchemas:
    """Every node class a server offers; copies with live model and input-file lists."""

    nodes: Mapping[str, NodeSchema]
    input_files: frozenset[str] | None = None
    """Files present in input/ (relative paths), for the file checks of LoadImage and kin."""

    @classmethod
    def from_object_info(cls, object_info: Mapping[str, Any]) -> NodeSchemas:
        return cls({name: _parse_node(name, info) for name, info in object_info.items()})

    def get(self, class_type: str) -> NodeSchema | None:
        return self.nodes.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.nodes)

    def _with_choices(
        self, choices: Mapping[tuple[str, str], Sequence[Any]]
    ) -> dict[str, NodeSchema]:
        nodes = dict(self.nodes)
        for (class_type, input_name), values in choices.items():
            node = nodes.get(class_type)
            if node is None or input_name not in node.inputs:
                continue
            inputs = dict(node.inputs)
            inputs[input_name] = inputs[input_name].with_choices(values)
            nodes[class_type] = replace(node, inputs=inputs)
        return nodes

    def with_models(self, models: Mapping[str, Sequence[str]]) -> NodeSchemas:
        """A copy whose loader inputs list ``models[folder]`` (sorted, as ComfyUI lists them)."""
        choices = {
            key: [*sorted(set(models.get(folder, ()))), *_MODEL_LIST_EXTRAS.get(key, ())]
            for key, folder in MODEL_FOLDERS.items()
        }
        return replace(self, nodes=self._with_choices(choices))

    def with_input_files(self, files: Sequence[str]) -> NodeSchemas:
        """A copy for a server whose input/ holds ``files``.

        LoadImage lists the image files, LoadAudio the audio and video files (as ComfyUI
        filters them); the existence checks of those nodes accept any of ``files``.
        """
        listed = sorted(set(files))
        choices = {
            key: [f for f in listed if _content_kind(f) in kinds]
            for key, (kinds, _) in _FILE_INPUTS.items()
        }
        return replace(self, nodes=self._with_choices(choices), input_files=frozenset(listed))


@dataclass(frozen=True)
class GraphIssue:
    """One error ComfyUI reports for a graph: its ``type`` (here ``kind``) and where it is."""

    kind: str
    message: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None
    details: str = ""
    extra_info: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The error object as ComfyUI writes it in a 400 body."""
        return {
            "type": self.kind,
            "message": self.message,
            "details": self.details,
            "extra_info": dict(self.extra_info),
        }


@dataclass(frozen=True)
class NodeErrors:
    """The ``node_errors`` entry of one node."""

    class_type: str
    errors: tuple[GraphIssue, ...]
    dependent_outputs: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "errors": [e.as_json() for e in self.errors],
            "dependent_outputs": list(self.dependent_outputs),
            "class_type": self.class_type,
        }


@dataclass(frozen=True)
class GraphCheck:
    """What ``POST /prompt`` decides about a graph.

    ``error`` is set when the server refuses it (400). Otherwise ``outputs`` run, and
    ``node_errors`` may still be non-empty: failed outputs are dropped (partial acceptance).
    """

    error: GraphIssue | None
    node_errors: Mapping[str, NodeErrors]
    outputs: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def issues(self) -> list[GraphIssue]:
        """Every problem: graph-level refusals first, then each node's errors."""
        out: list[GraphIssue] = []
        if self.error is not None and not self.node_errors:
            out.append(self.error)
        for entry in self.node_errors.values():
            out.extend(entry.errors)
        return out

    def node_errors_json(self) -> dict[str, Any]:
        return {node_id: entry.as_json() for node_id, entry in self.node_errors.items()}

    def error_body(self) -> dict[str, Any]:
        """The JSON body of the 400 answer (only meaningful when not accepted)."""
        error = self.error.as_json() if self.error else {}
        return {"error": error, "node_errors": self.node_errors_json()}


# The frames ComfyUI 0.33's tracebacks show for a link that cannot be followed.
_FRAME_RECURSE = '  File "/opt/ComfyUI/execution.py", line 955, in validate_inputs\n'
_FRAME_LOOKUP_NODE = '  File "/opt/ComfyUI/execution.py", line 933, in validate_inputs\n'
_FRAME_LOOKUP_OUTPUT = '  File "/opt/ComfyUI/execution.py", line 935, in validate_inputs\n'
_FRAME_VALIDATE_PROMPT = '  File "/opt/ComfyUI/execution.py", line 1116, in validate_prompt\n'


class _LinkCrash(Exception):
    """A link whose node or output does not exist; ComfyUI lets this escape to the caller."""

    def __init__(self, cause: Exception, frame: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.frame = frame


def _type_name(exc: Exception) -> str:
    typ = type(exc)
    return typ.__name__ if typ.__module__ == "builtins" else f"{typ.__module__}.{typ.__qualname__}"


def _types_match(received: Any, expected: Any) -> bool:
    """ComfyUI's validate_node_input: equal, ``*`` on either side, or overlapping a,b unions."""
    if received == expected:
        return True
    if received == COMBO and (isinstance(expected, list) or expected == COMBO):
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    if "*" in got or "*" in want:
        return True
    return not got.isdisjoint(want)


_Result = tuple[bool, list[dict[str, Any]]]


class _Validator:
    """One validation pass: ``validated`` memoises each node's (valid, errors), as ComfyUI does."""

    def __init__(self, graph: Mapping[str, Any], schemas: NodeSchemas) -> None:
        self.graph = graph
        self.schemas = schemas
        self.validated: dict[Any, _Result] = {}

    def node(self, node_id: Any) -> _Result:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.graph[node_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        schema = self.schemas.nodes[class_type]
        errors: list[dict[str, Any]] = []
        valid = True
        custom: dict[str, str] = {}
        for name, spec in schema.inputs.items():
            info = [spec.config[0], dict(spec.config[1])]
            if name not in inputs:
                if spec.required:
                    errors.append(
                        _error("required_input_missing", "Required input is missing", name, name)
                    )
                continue
            value = inputs[name]
            if isinstance(value, list):
                if not self._link(name, value, info, spec, errors):
                    valid = False
                continue
            file_check = _FILE_INPUTS.get((class_type, name))
            if file_check is not None:
                custom[name] = self._file_problem(spec, value, file_check[1])
                continue
            self._widget(name, value, info, spec, errors)
        for name, problem in custom.items():
            if problem:
                errors.append(
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": f"{name} - {problem}",
                        "extra_info": {"input_name": name},
                    }
                )
        result: _Result = (not errors and valid, errors)
        self.validated[node_id] = result
        return result

    def _link(
        self,
        name: str,
        value: list[Any],
        info: list[Any],
        spec: InputSpec,
        errors: list[dict[str, Any]],
    ) -> bool:
        """Check one linked input; False when the upstream node is invalid."""
        if len(value) != 2:
            errors.append(
                _error(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name,
                    name,
                    input_config=info,
                    received_value=value,
                )
            )
            return True
        source_id = value[0]
        try:
            source_class = self.graph[source_id]["class_type"]
        except Exception as exc:
            raise _LinkCrash(exc, _FRAME_LOOKUP_NODE) from exc
        try:
            received = self.schemas.nodes[source_class].outputs[value[1]]
        except Exception as exc:
            raise _LinkCrash(exc, _FRAME_LOOKUP_OUTPUT) from exc
        expected = spec.config[0] if spec.type == COMBO else spec.type
        if not _types_match(received, expected):
            errors.append(
                _error(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{name}, received_type({received}) mismatch input_type({expected})",
                    name,
                    input_config=info,
                    received_type=received,
                    linked_node=value,
                )
            )
            return True
        try:
            upstream_valid, _ = self.node(source_id)
        except _LinkCrash as crash:
            self.validated[source_id] = (
                False,
                [
                    {
                        "type": "exception_during_inner_validation",
                        "message": "Exception when validating inner node",
                        "details": str(crash.cause),
                        "extra_info": {
                            "input_name": name,
                            "input_config": info,
                            "exception_message": str(crash.cause),
                            "exception_type": _type_name(crash.cause),
                            "traceback": [_FRAME_RECURSE, crash.frame],
                            "linked_node": value,
                        },
                    }
                ],
            )
            return False
        return upstream_valid

    def _widget(
        self, name: str, value: Any, info: list[Any], spec: InputSpec, errors: list[dict[str, Any]]
    ) -> None:
        if isinstance(value, dict) and "__value__" in value:
            value = value["__value__"]
        try:
            if spec.type == "INT":
                value = int(value)
            elif spec.type == "FLOAT":
                value = float(value)
            elif spec.type == "STRING":
                value = str(value)
            elif spec.type == "BOOLEAN":
                value = bool(value)
        except Exception as exc:
            errors.append(
                _error(
                    "invalid_input_type",
                    f"Failed to convert an input value to a {spec.type} value",
                    f"{name}, {value}, {exc}",
                    name,
                    input_config=info,
                    received_value=value,
                    exception_message=str(exc),
                )
            )
            return
        options = spec.config[1]
        if "min" in options and value < options["min"]:
            errors.append(
                _error(
                    "value_smaller_than_min",
                    f"Value {value} smaller than min of {options['min']}",
                    name,
                    name,
                    input_config=info,
                    received_value=value,
                )
            )
            return
        if "max" in options and value > options["max"]:
            errors.append(
                _error(
                    "value_bigger_than_max",
                    f"Value {value} bigger than max of {options['max']}",
                    name,
                    name,
                    input_config=info,
                    received_value=value,
                )
            )
            return
        if spec.type != COMBO:
            return
        choices = list(spec.choices or ())
        if options.get("multiselect", False) and isinstance(value, list):
            invalid = [v for v in value if v not in choices]
        else:
            invalid = [] if value in choices else [value]
        if not invalid:
            return
        config: list[Any] | None = info
        # ComfyUI elides long lists (scanned model paths) from the error.
        if len(choices) > 20:
            listing = f"(list of length {len(choices)})"
            config = None
        else:
            listing = str(choices)
        errors.append(
            _error(
                "value_not_in_list",
                "Value not in list",
                f"{name}: '{value}' not in {listing}",
                name,
                input_config=config,
                received_value=value,
            )
        )

    def _file_problem(self, spec: InputSpec, value: Any, sentence: str) -> str:
        """The node's own check that the file exists in input/ ("" when it does)."""
        present = self.schemas.input_files
        if present is None:
            present = frozenset(str(c) for c in spec.choices or ())
        return "" if str(value).removesuffix(" [input]") in present else sentence.format(value)


def _error(kind: str, message: str, details: str, input_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "message": message,
        "details": details,
        "extra_info": {"input_name": input_name, **extra},
    }


def _issue(node_id: str, class_type: str, raw: Mapping[str, Any]) -> GraphIssue:
    extra = dict(raw.get("extra_info", {}))
    return GraphIssue(
        kind=raw["type"],
        message=raw["message"],
        node_id=node_id,
        class_type=class_type,
        input_name=extra.get("input_name"),
        details=raw.get("details", ""),
        extra_info=extra,
    )


def check_graph(graph: Mapping[str, Any], schemas: NodeSchemas) -> GraphCheck:
    """Decide about ``graph`` as ``POST /prompt`` does (raises TypeError for a non-dict node)."""
    outputs: list[str] = []
    for node_id, node in graph.items():
        if not isinstance(node, Mapping):
            raise TypeError(f"node {node_id!r} is not an object")
        title = (
            node.get("_meta", {}).get("title") if isinstance(node.get("_meta"), Mapping) else None
        )
        if "class_type" not in node:
            return _refused(
                GraphIssue(
                    kind="missing_node_type",
                    message=(
                        f"Node '{title or f'ID #{node_id}'}' has no class_type. "
                        "The workflow may be corrupted or a custom node is missing."
                    ),
                    node_id=str(node_id),
                    details=f"Node ID '#{node_id}'",
                    extra_info={"node_id": node_id, "class_type": None, "node_title": title},
                )
            )
        class_type = node["class_type"]
        schema = schemas.get(class_type)
        if schema is None:
            title = title or class_type
            return _refused(
                GraphIssue(
                    kind="missing_node_type",
                    message=f"Node '{title}' not found. The custom node may not be installed.",
                    node_id=str(node_id),
                    class_type=class_type,
                    details=f"Node ID '#{node_id}'",
                    extra_info={"node_id": node_id, "class_type": class_type, "node_title": title},
                )
            )
        if schema.output_node:
            outputs.append(node_id)
    if not outputs:
        return _refused(GraphIssue(kind="prompt_no_outputs", message="Prompt has no outputs"))

    validator = _Validator(graph, schemas)
    good: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[Any, dict[str, Any]] = {}
    for output_id in outputs:
        try:
            valid, reasons = validator.node(output_id)
        except _LinkCrash as crash:
            valid = False
            reasons = [
                {
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": str(crash.cause),
                    "extra_info": {
                        "exception_type": _type_name(crash.cause),
                        "traceback": [_FRAME_VALIDATE_PROMPT, crash.frame],
                    },
                }
            ]
            validator.validated[output_id] = (False, reasons)
        if valid:
            good.append(output_id)
            continue
        failed.append((output_id, reasons))
        for node_id, (node_valid, node_reasons) in validator.validated.items():
            if node_valid or not node_reasons:
                continue
            entry = node_errors.setdefault(
                node_id,
                {
                    "class_type": graph[node_id]["class_type"],
                    "errors": node_reasons,
                    "dependent_outputs": [],
                },
            )
            entry["dependent_outputs"].append(output_id)

    frozen = {
        str(node_id): NodeErrors(
            class_type=entry["class_type"],
            errors=tuple(_issue(str(node_id), entry["class_type"], e) for e in entry["errors"]),
            dependent_outputs=tuple(entry["dependent_outputs"]),
        )
        for node_id, entry in node_errors.items()
    }
    if good:
        return GraphCheck(error=None, node_errors=frozen, outputs=tuple(good))
    details = "\n".join(
        f"{reason['message']}: {reason['details']}" for _, reasons in failed for reason in reasons
    )
    error = GraphIssue(
        kind="prompt_outputs_failed_validation",
        message="Prompt outputs failed validation",
        details=details,
    )
    return GraphCheck(error=error, node_errors=frozen, outputs=())


def _refused(error: GraphIssue) -> GraphCheck:
    return GraphCheck(error=error, node_errors={}, outputs=())


def validate_graph(graph: Mapping[str, Any], schemas: NodeSchemas) -> list[GraphIssue]:
    """Every problem ComfyUI would report for ``graph``; empty when it runs in full."""
    return check_graph(graph, schemas).issues

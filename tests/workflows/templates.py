"""The official ComfyUI WAN 2.2 templates as API graphs, and a comparison of API graphs up to ids.

The templates ship in the UI format (LiteGraph JSON). ``template_graph`` converts one to the API
format the way the ComfyUI frontend does when it queues a prompt, so the golden tests can hold our
builders against the real thing. ``assert_same_graph`` compares two API graphs by structure and
values, never by node ids. docs/golden-tests.md lists every rule and normalisation with its reason.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Literal, TypeAlias

from wan_worker.testing import load_object_info
from wan_worker.workflows.graph import ApiGraph

Package = Literal["classic", "current"]
"""``classic``: comfyui-workflow-templates 0.2.11 (flat, two groups); ``current``: the json one."""

_PACKAGES: dict[Package, str] = {
    "classic": "comfyui_workflow_templates",
    "current": "comfyui_workflow_templates_json",
}

# Front-end-only nodes: notes are dropped, a PrimitiveNode's value is copied into what it feeds.
_NOTES = frozenset({"Note", "MarkdownNote"})
_LEGACY_PRIMITIVE = "PrimitiveNode"
# Value nodes whose value is inlined into the inputs they feed: our graphs carry literals.
_INLINED_PRIMITIVES = frozenset({"PrimitiveInt", "PrimitiveFloat", "PrimitiveBoolean"})
# Widget values the frontend stores after the schema's widgets: LoadImage's upload button,
# LoadAudio's two audio-player widgets.
_TRAILING_UI_VALUES = {"LoadImage": 1, "LoadVideo": 1, "LoadAudio": 2}
_WIDGET_TYPES = frozenset(
    {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "COMFY_DYNAMICCOMBO_V3"},
)
# Widgets of the nodes this converter evaluates itself (they never reach an API graph, so the
# fixture, trimmed to what WAN graphs run, leaves them out).
_EVALUATED_WIDGETS = {
    "PrimitiveBoolean": [("value", False)],
    "ComfySwitchNode": [("switch", False)],
    "ComfyMathExpression": [("expression", False)],
}
_SUBGRAPH_WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
_SUBGRAPH_INPUT_NODE = -10
_SUBGRAPH_OUTPUT_NODE = -20
_ACTIVE, _BYPASSED = 0, 4
_OUTPUT_CLASS = "SaveVideo"


class TemplateError(Exception):
    """A template uses something this converter does not understand; never guessed around."""


def load_template(name: str, package: Package) -> dict[str, Any]:
    """The UI-format JSON of ``<name>.json`` from the installed template package."""
    text = (files(_PACKAGES[package]) / "templates" / f"{name}.json").read_text(encoding="utf-8")
    template: dict[str, Any] = json.loads(text)
    return template


@cache
def object_info() -> dict[str, Any]:
    """The recorded ``/object_info`` of a real ComfyUI, packaged as the test double's fixture."""
    return load_object_info()


def template_graph(
    name: str,
    package: Package,
    *,
    alternative_group: bool = False,
    enable: Collection[int] = (),
    turbo: bool | None = None,
) -> ApiGraph:
    """Load a template and convert it to an API graph.

    ``alternative_group`` flips the top-level modes 0 <-> 4 (selects the group the template ships
    bypassed); ``enable`` sets these top-level node ids to mode 0; ``turbo`` forces the value of
    every PrimitiveBoolean (the current I2V/T2V "enable turbo mode" switch).
    """
    return convert(
        load_template(name, package),
        alternative_group=alternative_group,
        enable=enable,
        turbo=turbo,
    )


# --- conversion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ref:
    """Output ``slot`` of flattened node ``node``."""

    node: str
    slot: int


@dataclass(frozen=True)
class _Value:
    """A literal input value."""

    value: Any


_Source: TypeAlias = _Ref | _Value | None


@dataclass
class _Input:
    name: str
    type: str
    source: _Source


@dataclass
class _FlatNode:
    """A node with subgraphs expanded; ``id`` is ``"<instance>:<inner>"`` inside a subgraph."""

    id: str
    class_type: str
    mode: int
    widgets_values: list[Any]
    inputs: list[_Input]
    output_types: list[str]


def convert(
    ui: Mapping[str, Any],
    *,
    alternative_group: bool = False,
    enable: Collection[int] = (),
    turbo: bool | None = None,
) -> ApiGraph:
    """Convert a UI-format workflow to an API graph, as the frontend queues it (see module doc)."""

    def top_level_mode(node: Mapping[str, Any]) -> int:
        mode = int(node["mode"])
        if node["id"] in enable:
            return _ACTIVE
        if alternative_group and mode in (_ACTIVE, _BYPASSED):
            return _BYPASSED if mode == _ACTIVE else _ACTIVE
        return mode

    flat = _Flattener({sg["id"]: sg for sg in ui.get("definitions", {}).get("subgraphs", [])})
    flat.add_level(ui, "", [], top_level_mode)
    api_inputs = {
        node.id: _api_inputs(node)
        for node in flat.nodes.values()
        if node.mode == _ACTIVE and node.class_type not in flat.subgraphs
    }
    resolver = _Resolver(flat, api_inputs, turbo)
    graph: ApiGraph = {}
    for node_id, inputs in api_inputs.items():
        class_type = flat.nodes[node_id].class_type
        if class_type in _INLINED_PRIMITIVES or class_type in _EVALUATED:
            continue
        resolved: dict[str, Any] = {}
        for input_name, source in inputs.items():
            final = resolver.resolve(source)
            if isinstance(final, _Value):
                resolved[input_name] = final.value
            elif isinstance(final, _Ref):
                resolved[input_name] = [final.node, final.slot]
        graph[node_id] = {"class_type": class_type, "inputs": resolved}
    return _reachable_from_outputs(graph)


class _Flattener:
    """Expands subgraph instances into one flat node table, as the frontend does at queue time."""

    def __init__(self, subgraphs: Mapping[str, Mapping[str, Any]]) -> None:
        self.subgraphs = subgraphs
        self.nodes: dict[str, _FlatNode] = {}
        # Output slots of subgraph instances, resolved to the inner source they expose.
        self.instance_outputs: dict[_Ref, _Source] = {}

    def add_level(
        self,
        level: Mapping[str, Any],
        prefix: str,
        subgraph_inputs: list[_Source],
        mode_of: Callable[[Mapping[str, Any]], int],
    ) -> None:
        """Add the nodes of one graph level (``level`` has "nodes" and "links")."""
        links = level["links"]
        origins = {link_id: (origin, slot) for link_id, origin, slot in _link_origins(links)}

        def source_of(link_id: int | None) -> _Source:
            if link_id is None:
                return None
            origin, slot = origins[link_id]
            if origin == _SUBGRAPH_INPUT_NODE:
                return subgraph_inputs[slot]
            return _Ref(f"{prefix}{origin}", slot)

        for node in level["nodes"]:
            class_type = node["type"]
            if class_type in _NOTES:
                continue
            node_id = f"{prefix}{node['id']}"
            mode = mode_of(node)
            if mode not in (_ACTIVE, _BYPASSED):
                raise TemplateError(f"node {node_id} ({class_type}) has mode {mode}")
            inputs = [
                _Input(inp["name"], inp["type"], source_of(inp.get("link")))
                for inp in node.get("inputs", [])
            ]
            if class_type in self.subgraphs and mode == _ACTIVE:
                self._expand_instance(node_id, node, inputs)
                continue
            self.nodes[node_id] = _FlatNode(
                id=node_id,
                class_type=class_type,
                mode=mode,
                widgets_values=_widgets_values(node),
                inputs=inputs,
                output_types=[output["type"] for output in node.get("outputs", [])],
            )

        for link_id, target, target_slot in _link_targets(links):
            if target == _SUBGRAPH_OUTPUT_NODE:
                instance = prefix.removesuffix(":")
                self.instance_outputs[_Ref(instance, target_slot)] = source_of(link_id)

    def _expand_instance(
        self, instance_id: str, node: Mapping[str, Any], inputs: list[_Input]
    ) -> None:
        """Flatten one instance; its widget values feed the subgraph's widget inputs in order."""
        definition = self.subgraphs[node["type"]]
        linked = {inp.name: inp.source for inp in inputs if inp.source is not None}
        widget_values = iter(_widgets_values(node))
        sources: list[_Source] = []
        for sg_input in definition["inputs"]:
            source: _Source = None
            if sg_input["type"] in _SUBGRAPH_WIDGET_TYPES:
                value = next(widget_values, _MISSING)
                if value is not _MISSING:
                    source = _Value(value)
            sources.append(linked.get(sg_input["name"], source))
        if next(widget_values, _MISSING) is not _MISSING:
            raise TemplateError(
                f"subgraph instance {instance_id} has more widget values than inputs"
            )
        self.add_level(definition, f"{instance_id}:", sources, _follow(int(node["mode"])))


def _follow(saved_mode: int) -> Callable[[Mapping[str, Any]], int]:
    """Inner modes of an active instance that was saved as ``saved_mode``.

    The frontend that saved the classic templates pushed Ctrl+B on a subgraph node into the
    subgraph (inner nodes saved as mode 4 too); re-enabling the instance re-enables them.
    """

    def mode_of(inner: Mapping[str, Any]) -> int:
        mode = int(inner["mode"])
        return _ACTIVE if saved_mode == _BYPASSED and mode == _BYPASSED else mode

    return mode_of


_MISSING = object()


def _widgets_values(node: Mapping[str, Any]) -> list[Any]:
    values = node.get("widgets_values") or []
    if not isinstance(values, list):
        raise TemplateError(f"node {node['id']} ({node['type']}) stores widgets as a mapping")
    return values


def _link_origins(links: Iterable[Any]) -> Iterator[tuple[int, int, int]]:
    """(link id, origin node, origin slot) for top-level (list) and subgraph (dict) links."""
    for link in links:
        if isinstance(link, list):
            yield link[0], link[1], link[2]
        else:
            yield link["id"], link["origin_id"], link["origin_slot"]


def _link_targets(links: Iterable[Any]) -> Iterator[tuple[int, int, int]]:
    """(link id, target node, target slot) for top-level (list) and subgraph (dict) links."""
    for link in links:
        if isinstance(link, list):
            yield link[0], link[3], link[4]
        else:
            yield link["id"], link["target_id"], link["target_slot"]


def _widget_names(class_type: str) -> list[tuple[str, bool]]:
    """The node's widget inputs in schema order, each with "a UI-only control value follows"."""
    if class_type in _EVALUATED_WIDGETS:
        return _EVALUATED_WIDGETS[class_type]
    schema = object_info().get(class_type)
    if schema is None:
        raise TemplateError(f"{class_type} is not in the object_info fixture")
    widgets = []
    for section in ("required", "optional"):
        specs = schema["input"].get(section, {})
        for name in schema.get("input_order", {}).get(section, list(specs)):
            kind, *rest = specs[name]
            options = rest[0] if rest else {}
            if isinstance(kind, list) or kind in _WIDGET_TYPES:
                widgets.append((name, bool(options.get("control_after_generate"))))
    return widgets


def _api_inputs(node: _FlatNode) -> dict[str, _Source]:
    """Widget values mapped onto the schema's widget inputs, then links (which win)."""
    inputs: dict[str, _Source] = {}
    if node.class_type != _LEGACY_PRIMITIVE:
        values = node.widgets_values
        position = 0
        for name, control_follows in _widget_names(node.class_type):
            if position >= len(values):
                break
            inputs[name] = _Value(values[position])
            position += 2 if control_follows else 1
        left_over = max(len(values) - position, 0)
        if left_over != _TRAILING_UI_VALUES.get(node.class_type, 0):
            raise TemplateError(
                f"node {node.id} ({node.class_type}): {left_over} widget values left unmapped"
            )
    for inp in node.inputs:
        if inp.source is not None:
            inputs[inp.name] = inp.source
    return inputs


class _Resolver:
    """Follows a link through subgraph boundaries, bypassed nodes and statically known values."""

    def __init__(
        self, flat: _Flattener, api_inputs: Mapping[str, Mapping[str, _Source]], turbo: bool | None
    ) -> None:
        self._flat = flat
        self._inputs = api_inputs
        self._turbo = turbo

    def resolve(self, source: _Source) -> _Source:
        seen: set[_Ref] = set()
        while isinstance(source, _Ref):
            if source in seen:
                raise TemplateError(f"cycle through {source}")
            seen.add(source)
            if source in self._flat.instance_outputs:
                source = self._flat.instance_outputs[source]
                continue
            node = self._flat.nodes[source.node]
            if node.mode == _BYPASSED:
                source = _bypass(node, source.slot)
            elif node.class_type == _LEGACY_PRIMITIVE:
                return _Value(node.widgets_values[0])
            elif node.class_type in _INLINED_PRIMITIVES:
                return _Value(self._primitive(node))
            elif node.class_type == "ComfySwitchNode":
                switch = self.literal(node.id, "switch")
                source = self._inputs[node.id].get("on_true" if switch else "on_false")
            elif node.class_type == "ComfyMathExpression":
                return _Value(self._math(node, source.slot))
            else:
                return source
        return source

    def literal(self, node_id: str, name: str) -> Any:
        final = self.resolve(self._inputs[node_id].get(name))
        if not isinstance(final, _Value):
            raise TemplateError(f"{node_id}.{name} is not statically known")
        return final.value

    def _primitive(self, node: _FlatNode) -> Any:
        if node.class_type == "PrimitiveBoolean" and self._turbo is not None:
            return self._turbo
        return self.literal(node.id, "value")

    def _math(self, node: _FlatNode, slot: int) -> Any:
        names = {
            name.removeprefix("values."): self.literal(node.id, name)
            for name, source in self._inputs[node.id].items()
            if name.startswith("values.") and source is not None
        }
        result = _evaluate(str(self.literal(node.id, "expression")), names)
        # Outputs of the templates' ComfyMathExpression: 0 FLOAT, 1 INT, 2 BOOLEAN.
        return (float, int, bool)[slot](result)


_EVALUATED = frozenset({"ComfySwitchNode", "ComfyMathExpression"})


def _bypass(node: _FlatNode, slot: int) -> _Source:
    """A bypassed node's output passes through its input of the same type (same slot first)."""
    wanted = node.output_types[slot]
    if slot < len(node.inputs) and node.inputs[slot].type == wanted:
        return node.inputs[slot].source
    for inp in node.inputs:
        if inp.type == wanted:
            return inp.source
    return None


_MATH_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
    "abs": abs,
    "min": min,
    "max": max,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}


def _evaluate(expression: str, names: Mapping[str, Any]) -> Any:
    """Evaluate a ComfyMathExpression over numbers, + - * / // % **, and a few functions."""

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = walk(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _MATH_FUNCTIONS
            and not node.keywords
        ):
            return _MATH_FUNCTIONS[node.func.id](*(walk(arg) for arg in node.args))
        raise TemplateError(f"unsupported expression {expression!r}")

    return walk(ast.parse(expression.strip(), mode="eval"))


def _reachable_from_outputs(graph: ApiGraph) -> ApiGraph:
    """Keep only the nodes SaveVideo depends on (drops stray previews and dead branches)."""
    keep: set[str] = set()
    pending = [node_id for node_id, node in graph.items() if node["class_type"] == _OUTPUT_CLASS]
    while pending:
        node_id = pending.pop()
        if node_id in keep:
            continue
        keep.add(node_id)
        pending.extend(value[0] for value in graph[node_id]["inputs"].values() if _is_link(value))
    return {node_id: node for node_id, node in graph.items() if node_id in keep}


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


# --- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ignored:
    """An input left out of the comparison; ``feeding`` limits it to nodes linked to that input."""

    class_type: str
    input: str
    feeding: str | None = None


DEFAULT_IGNORED: tuple[Ignored, ...] = (
    Ignored("KSamplerAdvanced", "noise_seed"),
    Ignored("KSampler", "seed"),
    Ignored("CLIPTextEncode", "text", feeding="positive"),
    Ignored("LoadImage", "image"),
    Ignored("LoadAudio", "audio"),
    Ignored("SaveVideo", "filename_prefix"),
)
"""Per-request values: seeds, the positive prompt, input file names, the output prefix."""

_FLOAT_DIGITS = 12


def canonical_inputs(graph: ApiGraph, *, ignore: Collection[Ignored] = DEFAULT_IGNORED) -> ApiGraph:
    """The graph with ignored inputs dropped and each documented normalisation applied."""
    feeds: dict[str, set[str]] = {node_id: set() for node_id in graph}
    for node in graph.values():
        for name, value in node["inputs"].items():
            if _is_link(value) and value[0] in feeds:
                feeds[value[0]].add(name)
    result: ApiGraph = {}
    for node_id, node in graph.items():
        class_type = node["class_type"]
        dropped = {
            rule.input
            for rule in ignore
            if rule.class_type == class_type
            and (rule.feeding is None or rule.feeding in feeds[node_id])
        }
        inputs = {
            name: value if _is_link(value) else _canonical_value(value)
            for name, value in node["inputs"].items()
            if name not in dropped
        }
        _normalise(class_type, inputs)
        result[node_id] = {"class_type": class_type, "inputs": inputs}
    return result


def _canonical_value(value: Any) -> Any:
    """Numbers compared to 12 significant digits (templates store 1.0000000000000002 for 1)."""
    if isinstance(value, float):
        rounded = float(f"{value:.{_FLOAT_DIGITS}g}")
        return int(rounded) if rounded.is_integer() else rounded
    if isinstance(value, list):
        return [_canonical_value(item) for item in value]
    return value


def _normalise(class_type: str, inputs: dict[str, Any]) -> None:
    if class_type == "KSamplerAdvanced":
        # end_at_step >= steps runs to the last step either way (templates use 10000 or steps).
        steps, end = inputs.get("steps"), inputs.get("end_at_step")
        if isinstance(steps, int) and isinstance(end, int) and end >= steps:
            inputs["end_at_step"] = steps
    if class_type == "CreateVideo" and inputs.get("bit_depth") == 8:
        # The newest CreateVideo's bit_depth; 8 is its default and what older servers produce.
        del inputs["bit_depth"]


def node_hashes(graph: ApiGraph) -> dict[str, str]:
    """Merkle hash of each node: class type, literals, each link's source hash and slot."""
    hashes: dict[str, str] = {}

    def visit(node_id: str, path: tuple[str, ...]) -> str:
        if node_id in hashes:
            return hashes[node_id]
        if node_id in path:
            raise AssertionError(f"the graph has a cycle through node {node_id!r}")
        node = graph[node_id]
        literals, links = [], []
        for name, value in sorted(node["inputs"].items()):
            if _is_link(value):
                if value[0] not in graph:
                    raise AssertionError(f"{node_id}.{name} links to missing node {value[0]!r}")
                links.append([name, visit(value[0], (*path, node_id)), value[1]])
            else:
                literals.append([name, value])
        text = json.dumps([node["class_type"], literals, links], sort_keys=True, default=repr)
        hashes[node_id] = hashlib.sha256(text.encode()).hexdigest()
        return hashes[node_id]

    for node_id in graph:
        visit(node_id, ())
    return hashes


def _fan_out(graph: ApiGraph, hashes: Mapping[str, str]) -> Counter[str]:
    """Each node with the (consumer, input) pairs it feeds: tells shared nodes from copies."""
    consumers: dict[str, list[tuple[str, str, int]]] = {node_id: [] for node_id in graph}
    for node_id, node in graph.items():
        for name, value in node["inputs"].items():
            if _is_link(value):
                consumers[value[0]].append((hashes[node_id], name, value[1]))
    return Counter(
        json.dumps([hashes[node_id], sorted(uses)]) for node_id, uses in consumers.items()
    )


def graph_difference(
    ours: ApiGraph, theirs: ApiGraph, *, ignore: Collection[Ignored] = DEFAULT_IGNORED
) -> str | None:
    """None when the graphs are the same up to node ids, else a readable account of the changes."""
    ours_c = canonical_inputs(ours, ignore=ignore)
    theirs_c = canonical_inputs(theirs, ignore=ignore)
    ours_side = _Side(ours_c, node_hashes(ours_c))
    theirs_side = _Side(theirs_c, node_hashes(theirs_c))
    if Counter(ours_side.hashes.values()) != Counter(theirs_side.hashes.values()):
        return _describe_difference(ours_side, theirs_side)
    if _fan_out(ours_c, ours_side.hashes) != _fan_out(theirs_c, theirs_side.hashes):
        return (
            "the graphs have the same nodes but share them differently "
            "(a node used by several consumers in one is duplicated in the other)"
        )
    return None


def assert_same_graph(
    ours: ApiGraph, theirs: ApiGraph, *, ignore: Collection[Ignored] = DEFAULT_IGNORED
) -> None:
    """Fail with a readable diff unless the two API graphs are the same up to node ids."""
    difference = graph_difference(ours, theirs, ignore=ignore)
    if difference is not None:
        raise AssertionError(difference)


@dataclass(frozen=True)
class _Side:
    """One graph of a comparison, canonicalised, with its node hashes."""

    graph: ApiGraph
    hashes: Mapping[str, str]

    def show(self, value: Any) -> str:
        if value is _MISSING:
            return "(absent)"
        if _is_link(value):
            source = self.graph[value[0]]
            literals = {k: v for k, v in source["inputs"].items() if not _is_link(v)}
            digest = self.hashes[value[0]][:8]
            return f"<- {source['class_type']}{_short(literals)}[{value[1]}] #{digest}"
        return json.dumps(value, ensure_ascii=False)

    def describe(self, node_id: str) -> str:
        node = self.graph[node_id]
        shown = ", ".join(f"{k}={self.show(v)}" for k, v in node["inputs"].items())
        return f"{node['class_type']} {node_id!r} {shown}"

    def unmatched(self, other: _Side, *, exclude: Collection[str]) -> list[str]:
        """Nodes without an equal in ``other`` (multiset-wise), except ``exclude``."""
        remaining = Counter(self.hashes.values()) - Counter(other.hashes.values())
        result = []
        for node_id in self.graph:
            if remaining[self.hashes[node_id]] > 0:
                remaining[self.hashes[node_id]] -= 1
                if node_id not in exclude:
                    result.append(node_id)
        return result

    def roots(self, other: _Side) -> list[str]:
        """Unmatched nodes whose linked sources all have an equal in ``other``."""
        remaining = Counter(self.hashes.values()) - Counter(other.hashes.values())
        matched = set(other.hashes.values())
        roots = []
        for node_id, node in self.graph.items():
            if remaining[self.hashes[node_id]] <= 0:
                continue
            sources = [v[0] for v in node["inputs"].values() if _is_link(v)]
            if all(self.hashes[source] in matched for source in sources):
                remaining[self.hashes[node_id]] -= 1
                roots.append(node_id)
        return roots


def _describe_difference(ours: _Side, theirs: _Side) -> str:
    """Name the first differing nodes (all their sources match) and pair them by class type."""
    ours_extra = Counter(ours.hashes.values()) - Counter(theirs.hashes.values())
    theirs_extra = Counter(theirs.hashes.values()) - Counter(ours.hashes.values())
    lines = [
        f"graphs differ: ours has {len(ours.graph)} nodes, the template {len(theirs.graph)}; "
        f"{ours_extra.total()} of ours and {theirs_extra.total()} of the template's have no "
        "equal (first differences below; their consumers differ as a consequence)"
    ]
    unpaired = theirs.roots(ours)
    for our_id in ours.roots(theirs):
        class_type = ours.graph[our_id]["class_type"]
        candidates = [t for t in unpaired if theirs.graph[t]["class_type"] == class_type]
        if not candidates:
            lines.append(f"  only in ours: {ours.describe(our_id)}")
            continue
        their_id = min(candidates, key=lambda t: len(_changes(ours, our_id, theirs, t)))
        unpaired.remove(their_id)
        lines.append(f"  {class_type} (ours {our_id!r}, template {their_id!r}):")
        lines.extend(f"    {change}" for change in _changes(ours, our_id, theirs, their_id))
    lines.extend(f"  only in the template: {theirs.describe(t)}" for t in unpaired)
    lines.extend(_downstream_value_changes(ours, theirs))
    return "\n".join(lines)


def _downstream_value_changes(ours: _Side, theirs: _Side) -> list[str]:
    """Literal changes in unmatched consumers, which a changed source alone would not explain."""
    ours_rest = ours.unmatched(theirs, exclude=ours.roots(theirs))
    theirs_rest = theirs.unmatched(ours, exclude=theirs.roots(ours))
    lines = []
    for our_id in ours_rest:
        class_type = ours.graph[our_id]["class_type"]
        candidates = [t for t in theirs_rest if theirs.graph[t]["class_type"] == class_type]
        if not candidates:
            continue
        their_id = min(
            candidates, key=lambda t: len(_changes(ours, our_id, theirs, t, links=False))
        )
        theirs_rest.remove(their_id)
        changes = _changes(ours, our_id, theirs, their_id, links=False)
        if changes:
            lines.append(f"  also {class_type} (ours {our_id!r}, template {their_id!r}):")
            lines.extend(f"    {change}" for change in changes)
    return lines


def _changes(
    ours: _Side, our_id: str, theirs: _Side, their_id: str, *, links: bool = True
) -> list[str]:
    ours_inputs = ours.graph[our_id]["inputs"]
    theirs_inputs = theirs.graph[their_id]["inputs"]
    changes = []
    for name in sorted(set(ours_inputs) | set(theirs_inputs)):
        is_link = _is_link(ours_inputs.get(name)) or _is_link(theirs_inputs.get(name))
        if is_link and not links:
            continue
        mine = ours.show(ours_inputs.get(name, _MISSING))
        template = theirs.show(theirs_inputs.get(name, _MISSING))
        if mine != template:
            changes.append(f"{name}: ours {mine}, template {template}")
    return changes


def _short(literals: Mapping[str, Any]) -> str:
    if not literals:
        return ""
    text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in literals.items())
    return f"({text[:80]}{'...' if len(text) > 80 else ''})"

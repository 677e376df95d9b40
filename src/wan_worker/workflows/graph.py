"""A small graph builder in the idiom of ComfyUI's own ``GraphBuilder``.

``g.node("KSamplerAdvanced", model=m.out(0), ...)`` adds a node; ``node.out(i)`` is a link to its
i-th output; ``g.finalize()`` gives the API dict that ``POST /prompt`` accepts. Node ids are the
readable names the caller gives, so the same request always yields byte-identical JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ApiGraph = dict[str, dict[str, Any]]
"""A ComfyUI API-format graph: ``{node_id: {"class_type", "inputs", "_meta": {"title"}}}``."""

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_:.-]*$")


@dataclass(frozen=True)
class Link:
    """The ``index``-th output of node ``node_id``; serialises as ``[node_id, index]``."""

    node_id: str
    index: int

    def as_json(self) -> list[str | int]:
        return [self.node_id, self.index]


@dataclass
class Node:
    """One node of a graph under construction."""

    id: str
    class_type: str
    inputs: dict[str, Any]
    title: str

    def out(self, index: int = 0) -> Link:
        return Link(self.id, index)


@dataclass
class Graph:
    """An ordered set of nodes; build with :meth:`node`, emit with :meth:`finalize`."""

    nodes: dict[str, Node] = field(default_factory=dict)

    def node(self, class_type: str, node_id: str, *, title: str = "", **inputs: Any) -> Node:
        """Add a node. Inputs whose value is ``None`` are left out (unconnected optionals)."""
        if not _ID_PATTERN.match(node_id):
            raise ValueError(f"node id {node_id!r} must be lowercase letters, digits and _:.-")
        if node_id in self.nodes:
            raise ValueError(f"node id {node_id!r} is used twice")
        for name, value in inputs.items():
            if isinstance(value, Link) and value.node_id not in self.nodes:
                raise ValueError(f"{node_id}.{name} links to unknown node {value.node_id!r}")
        node = Node(
            id=node_id,
            class_type=class_type,
            inputs={k: v for k, v in inputs.items() if v is not None},
            title=title or class_type,
        )
        self.nodes[node_id] = node
        return node

    def finalize(self) -> ApiGraph:
        """The API dict, in insertion order, links as ``[id, index]``."""
        return {
            node.id: {
                "class_type": node.class_type,
                "inputs": {
                    name: value.as_json() if isinstance(value, Link) else value
                    for name, value in node.inputs.items()
                },
                "_meta": {"title": node.title},
            }
            for node in self.nodes.values()
        }


def to_json(graph: ApiGraph) -> str:
    """Canonical JSON text of a graph: stable order, UTF-8 kept, two-space indent."""
    return json.dumps(graph, indent=2, ensure_ascii=False) + "\n"

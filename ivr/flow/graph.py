"""Draw a flow as Mermaid or Graphviz dot, from the same edges validation uses."""

from __future__ import annotations

import re

from ivr.flow.model import Flow

_SAFE = re.compile(r"[^A-Za-z0-9_]")


def _id(node_id: str) -> str:
    return "n_" + _SAFE.sub("_", node_id)


def _label(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")[:40]


def mermaid(flow: Flow) -> str:
    lines = ["flowchart TD", f'  start(("{_label(flow.id)}")) --> {_id(flow.header.start)}']
    for node_id, node in flow.nodes.items():
        shape = ('{{"%s"}}' if node.waits_for_input else '["%s"]') % _label(f"{node_id}: {node.kind}")
        lines.append(f"  {_id(node_id)}{shape}")
    for node_id, node in flow.nodes.items():
        for edge in node.edges():
            lines.append(f'  {_id(node_id)} -->|"{_label(edge.label)}"| {_id(edge.target)}')
    for link in flow.header.globals:
        if link.goto:
            key = link.dtmf or (link.speech[0] if link.speech else "")
            lines.append(f'  start -.->|"global {_label(key)}"| {_id(link.goto)}')
    return "\n".join(lines) + "\n"


def dot(flow: Flow) -> str:
    lines = [f'digraph "{_label(flow.id)}" {{', "  rankdir=TB;", "  node [fontname=Helvetica];",
             '  __start [shape=circle, label="start"];', f"  __start -> {_id(flow.header.start)};"]
    for node_id, node in flow.nodes.items():
        shape = "diamond" if node.waits_for_input else "box"
        lines.append(f'  {_id(node_id)} [shape={shape}, label="{_label(node_id)}\\n{node.kind}"];')
    for node_id, node in flow.nodes.items():
        for edge in node.edges():
            lines.append(f'  {_id(node_id)} -> {_id(edge.target)} [label="{_label(edge.label)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"

"""JSON Schema of flow files, for editors (VS Code's YAML extension) and CI linters."""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

import ivr.flow.nodes  # noqa: F401 - fills the node registry
from ivr.flow.model import NODE_TYPES, FlowHeader

SCHEMA_ID = "https://ivr.invalid/schemas/flow.json"


def flow_schema() -> dict[str, Any]:
    """The header's schema with `nodes` as a map of one-of the node kinds."""
    kinds = tuple(NODE_TYPES[k] for k in sorted(NODE_TYPES))
    node_union = Union[kinds]  # type: ignore[valid-type]  # noqa: UP007 - built at run time
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in FlowHeader.model_fields.items()
    }
    fields["nodes"] = (dict[str, node_union], Field(description="node id -> node; one kind key each"))
    model: type[BaseModel] = create_model(
        "FlowFile", __config__=ConfigDict(extra="forbid"), **fields
    )
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "ivr flow"
    for kind, cls in NODE_TYPES.items():
        definition = schema.get("$defs", {}).get(cls.__name__)
        if definition is not None:
            definition["required"] = sorted({*definition.get("required", []), kind})
            definition["description"] = (cls.__doc__ or kind).strip().splitlines()[0]
    return schema

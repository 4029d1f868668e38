"""The JSON schemas documented in docs/cli.md, and a small validator for them.

The schemas are read from the documentation itself (each follows a
``<!-- schema: NAME -->`` marker), so a test that validates against them checks that
the CLI does what the documentation says.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
_BLOCK = re.compile(r"<!-- schema: ([a-z ]+) -->.*?```json\n(.*?)\n```", re.DOTALL)
_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "boolean": bool,
    "null": type(None),
}


@cache
def schemas() -> dict[str, dict[str, Any]]:
    return {name: json.loads(body) for name, body in _BLOCK.findall(DOC.read_text())}


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty when it conforms)."""
    if "$ref" in schema:
        return errors(value, schemas()[schema["$ref"]], path)
    out: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} not in {schema['enum']}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in types):
            return [*out, f"{path}: {type(value).__name__} is not {types}"]
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{path}: missing {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                out += errors(item, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                out += errors(item, extra, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += errors(item, schema["items"], f"{path}[{i}]")
    return out


def check(doc: dict[str, Any], *names: str) -> None:
    """Assert ``doc`` conforms to the envelope and to every named schema."""
    envelope = "success" if doc.get("ok") else "error"
    problems = errors(doc, schemas()[envelope])
    for name in names:
        problems += errors(doc, schemas()[name])
    assert not problems, "\n".join(problems) + "\n" + json.dumps(doc, indent=1)

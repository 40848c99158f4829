"""A message as LINE receives it: the SDK model turned into its JSON dict, once.

The SDK's own ``to_dict()`` asks pydantic for the whole subtree and then
serialises every nested model again to override it, level by level: a
ten-card Flex carousel took 8 ms, and the Flex size check and the reply did
it twice. This walks the model once, with the same result — every field
under its alias, ``None`` left out — which ``tests/test_wire.py`` checks
against ``to_dict()`` for every kind of message the bot sends, and the fake
platform checks against LINE's OpenAPI spec.
"""
from __future__ import annotations

from typing import Any

from pydantic.v1 import BaseModel


def wire(value: Any) -> Any:
    """``value`` (an SDK model, a list, a dict or a plain value) as JSON-ready data."""
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        data = value.__dict__
        for name, field in value.__fields__.items():
            item = data.get(name)
            if item is not None:
                out[field.alias] = wire(item)
        return out
    if isinstance(value, (list, tuple)):
        return [wire(item) for item in value]
    if isinstance(value, dict):
        return {key: wire(item) for key, item in value.items() if item is not None}
    return value

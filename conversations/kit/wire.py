"""A message as LINE receives it: the SDK model turned into its JSON dict, once — and the
models themselves, built without re-validation where the builders already made them right.

The SDK's own ``to_dict()`` asks pydantic for the whole subtree and then
serialises every nested model again to override it, level by level: a
ten-card Flex carousel took 8 ms, and the Flex size check and the reply did
it twice. :func:`wire` walks the model once, with the same result — every
field under its alias, ``None`` left out — which ``tests/test_wire.py`` checks
against ``to_dict()`` for every kind of message the bot sends, and the fake
platform checks against LINE's OpenAPI spec.

:func:`built` is pydantic's ``construct()`` for the SDK's models, stricter and
cheaper: a misspelt or missing field is refused (``construct`` keeps the first
and ignores the second), and the defaults are read once per class instead of
per field per model (a ten-card carousel builds ~250 models).
"""
from __future__ import annotations

from typing import Any, TypeVar

from pydantic.v1 import BaseModel

_M = TypeVar("_M", bound=BaseModel)
_IMMUTABLE = (type(None), str, int, float, bool)
_ALIASES: dict[type, tuple[tuple[str, str], ...]] = {}
# Per class: every field in order with its default (required ones absent), the required
# names, and all names; ``None`` when a default is mutable (then ``construct`` copies it).
_TEMPLATES: dict[type, tuple[dict[str, Any], frozenset[str], frozenset[str]] | None] = {}


def wire(value: Any) -> Any:
    """``value`` (an SDK model, a list, a dict or a plain value) as JSON-ready data."""
    if isinstance(value, BaseModel):
        cls = type(value)
        aliases = _ALIASES.get(cls)
        if aliases is None:
            aliases = _ALIASES[cls] = tuple((name, f.alias) for name, f in cls.__fields__.items())
        out: dict[str, Any] = {}
        data = value.__dict__
        for name, alias in aliases:
            item = data.get(name)
            if item is not None:
                out[alias] = wire(item)
        return out
    if isinstance(value, (list, tuple)):
        return [wire(item) for item in value]
    if isinstance(value, dict):
        return {key: wire(item) for key, item in value.items() if item is not None}
    return value


def built(cls: type[_M], **values: Any) -> _M:
    """An SDK model from values the caller has already made valid, by field name (not alias)."""
    template = _template(cls)
    if template is None:
        return cls.construct(**values)
    defaults, required, names = template
    unknown = values.keys() - names
    if unknown:
        raise TypeError(f"not a {cls.__name__} field: {sorted(unknown)}")
    missing = required - values.keys()
    if missing:
        raise TypeError(f"{cls.__name__} needs {sorted(missing)}")
    data = dict(defaults)
    data.update(values)
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", data)
    object.__setattr__(model, "__fields_set__", set(values))
    model._init_private_attributes()
    return model


def _template(cls: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str], frozenset[str]] | None:
    if cls not in _TEMPLATES:
        defaults: dict[str, Any] = {}
        required = set()
        for name, field in cls.__fields__.items():
            if field.required:
                required.add(name)
                defaults[name] = None  # keeps the field order; always replaced (checked above)
            elif field.default_factory is None and isinstance(field.default, _IMMUTABLE):
                defaults[name] = field.default
            else:
                _TEMPLATES[cls] = None
                return None
        _TEMPLATES[cls] = (defaults, frozenset(required), frozenset(cls.__fields__))
    return _TEMPLATES[cls]

"""LINE's webhook event schema, checked before anything reads an event.

A correctly signed body comes from LINE (or from whoever holds the channel
secret), yet one of its events can still have the wrong shape: a string
``timestamp``, a numeric ``userId``, a ``message`` that is a string. The code
downstream reads fields assuming LINE's types, so such an event used to be a
500 that also skipped the rest of the batch and left its dedupe marker set.
The webhook therefore checks every event here first and skips a malformed one.

The schema is LINE's own: ``handlers/spec/webhook.yml``, a verbatim copy of
the vendored OpenAPI file (handlers must not import the simulator). It is
compiled once, at import, into plain closures, because this runs for every
event on the hot path (2-4 µs per event; a jsonschema validator over the
same file costs ~200 µs). The compiled check follows the file, with these
choices, each on purpose:

* Forward compatible: an unknown discriminator value (a new event type,
  message type or source type) is checked against the base schema only, and
  unknown properties are allowed: LINE adds both, and the router ignores them.
* Formats the file names are enforced: ``int64``/``int32`` ranges, finite
  ``double`` (``1e400`` parses as infinity). An integer without a format is
  held to int64 too: LINE sends nothing wider, and an unbounded integer is the
  kind of value that breaks arithmetic downstream. ``uri`` is not checked (the
  bot never follows those URLs).
* Strings must be valid Unicode: JSON may spell a lone surrogate
  (``"\\ud800"``), UTF-8 cannot carry one, LINE never sends one, and it breaks
  every encoder downstream (Redis keys, SQL, log pseudonyms).
* Facts of LINE's reference that the file states only in prose: a ``userId``
  is ``U`` + 32 hex digits (the bot keys Redis and SQL on it and pushes to
  it), and ``webhookEventId`` is a ULID (the dedupe key). And what the bot
  reads on every event (``replyToken``, the source's ids) is declared on the
  base schemas too, so an event or source of a type added later is held to it.
"""
from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import yaml

SPEC = Path(__file__).resolve().parent / "spec" / "webhook.yml"

USER_ID_PATTERN = "^U[0-9a-f]{32}$"
ULID_PATTERN = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"  # Crockford base32, decoded case-insensitively

# A check returns None when the value is well-formed, else its first problem
# as "<path below the value>: <reason>", e.g. ".source.userId: not a string".
# A reason never contains the value itself (it may be personal data).
Check = Callable[[Any], "str | None"]

_REF_PREFIX = "#/components/schemas/"
_INTEGER_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_MAX_DOUBLE = sys.float_info.max


def problem(event: Any) -> str | None:
    """Where ``event`` first breaks LINE's webhook schema (``"$.timestamp: not an integer"``),
    or None when it is well-formed and safe to read."""
    found = _EVENT(event)
    return None if found is None else "$" + found


def sender(event: Any) -> str | None:
    """The event's ``userId`` if it is a (valid Unicode) string: only for naming
    the user in a log line about a malformed event, never to act on."""
    source = event.get("source") if isinstance(event, dict) else None
    user_id = source.get("userId") if isinstance(source, dict) else None
    return user_id if isinstance(user_id, str) and _is_unicode(user_id) else None


def loads(body: str) -> Any:
    """``json.loads`` for a webhook body, except that an integer literal too long
    for Python to convert (over 4,300 digits) makes only its event malformed
    instead of failing the whole body. Raises ValueError for text that is not
    JSON, RecursionError for nesting deeper than the interpreter's stack."""
    return _DECODER.decode(body)


def _parse_int(digits: str) -> int | float:
    """The too-long integer becomes ±infinity, which every integer and number check refuses."""
    try:
        return int(digits)
    except ValueError:
        return -math.inf if digits.startswith("-") else math.inf


_DECODER = json.JSONDecoder(parse_int=_parse_int)  # built once: json.loads(..., parse_int=) builds one per call


# --- the checks ---------------------------------------------------------------------------


def _is_unicode(value: str) -> bool:
    """No lone surrogate (the ASCII test first: it is nearly free and covers ids and tokens)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _string(enum: Iterable[str] | None, pattern: str | None, min_length: int | None, max_length: int | None) -> Check:
    allowed = frozenset(enum) if enum is not None else None
    # JSON Schema's "$" is the end of the string; Python's also matches before a final "\n".
    matcher = re.compile(re.sub(r"\$$", r"\\Z", pattern)).search if pattern else None

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return ": not a string"
        if not _is_unicode(value):
            return ": not valid Unicode (lone surrogate)"
        if allowed is not None and value not in allowed:
            return f": not one of {sorted(allowed)}"
        if matcher is not None and matcher(value) is None:
            return f": does not match {pattern}"
        if max_length is not None and len(value) > max_length:
            return f": longer than {max_length} characters"
        if min_length is not None and len(value) < min_length:
            return f": shorter than {min_length} characters"
        return None

    return check


def _integer(fmt: str | None) -> Check:
    low, high = _INTEGER_RANGES.get(fmt or "int64", _INTEGER_RANGES["int64"])
    name = fmt if fmt in _INTEGER_RANGES else "int64"

    def check(value: Any) -> str | None:
        if type(value) is not int:  # bool is an int subclass, 1.0 a float: neither is a JSON integer
            return ": not an integer"
        if not low <= value <= high:
            return f": out of {name} range"
        return None

    return check


def _number(value: Any) -> str | None:
    if type(value) is float:
        return None if math.isfinite(value) else ": not a finite number"
    if type(value) is int:
        return None if -_MAX_DOUBLE <= value <= _MAX_DOUBLE else ": out of double range"
    return ": not a number"


def _boolean(value: Any) -> str | None:
    return None if type(value) is bool else ": not a boolean"


def _array(items: Check | None, max_items: int | None) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return ": not an array"
        if max_items is not None and len(value) > max_items:
            return f": more than {max_items} items"
        if items is not None:
            for index, item in enumerate(value):
                found = items(item)
                if found is not None:
                    return f"[{index}]{found}"
        return None

    return check


def _object(required: tuple[str, ...], props: tuple[tuple[str, Check], ...], values: Check | None) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return ": not an object"
        for name in required:
            if name not in value:
                return f".{name}: missing"
        for name, sub in props:
            if name in value:
                found = sub(value[name])
                if found is not None:
                    return f".{name}{found}"
        if values is not None:
            for item in value.values():
                found = values(item)
                if found is not None:
                    return f".*{found}"  # "*": the key is the sender's data, not logged
        return None

    return check


def _all(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> str | None:
        for sub in checks:
            found = sub(value)
            if found is not None:
                return found
        return None

    return check


def _discriminated(base: Check, prop: str, branches: dict[str, Check]) -> Check:
    """OAS ``discriminator``: the base, then the branch its property names.
    An unknown name passes on the base alone (LINE adds types)."""

    def check(value: Any) -> str | None:
        found = base(value)
        if found is not None:
            return found
        key = value.get(prop) if isinstance(value, dict) else None
        branch = branches.get(key) if isinstance(key, str) else None
        return None if branch is None else branch(value)

    return check


# --- compiling the spec ---------------------------------------------------------------------


def _ref_name(ref: str) -> str:
    if not ref.startswith(_REF_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}")
    return ref[len(_REF_PREFIX):]


class _Compiler:
    """OpenAPI 3.0 schema objects → checks; only the keywords webhook.yml uses
    (an unknown one fails loudly at import rather than being ignored)."""

    KNOWN = {"type", "required", "properties", "additionalProperties", "items", "allOf", "$ref", "discriminator",
             "enum", "format", "pattern", "maxLength", "minLength", "maxItems", "description", "externalDocs",
             "example"}

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas
        self.done: dict[tuple[str, str | None], Check] = {}
        self.busy: set[tuple[str, str | None]] = set()

    def named(self, name: str, skip: str | None = None) -> Check:
        """The check of ``#/components/schemas/<name>``; ``skip``: a parent whose
        ``allOf`` reference is left out because the caller is its discriminator
        and has checked the parent already."""
        key = (name, skip)
        if key not in self.done:
            if key in self.busy:
                raise ValueError(f"recursive schema {name}")
            self.busy.add(key)
            self.done[key] = self.schema(self.schemas[name], name, skip)
            self.busy.discard(key)
        return self.done[key]

    def schema(self, node: dict[str, Any], name: str | None = None, skip: str | None = None) -> Check:
        unknown = set(node) - self.KNOWN
        if unknown:
            raise ValueError(f"unsupported keywords {sorted(unknown)} in {name or node}")
        if "$ref" in node:
            return self.named(_ref_name(node["$ref"]))
        checks: list[Check] = []
        merged = dict(node)
        for part in node.get("allOf", ()):
            if "$ref" in part:
                if _ref_name(part["$ref"]) != skip:
                    checks.append(self.named(_ref_name(part["$ref"])))
            else:
                merged = _merge(merged, part)
        checks.append(self.own(merged))
        check = _all(checks)
        discriminator = node.get("discriminator")
        if discriminator and name is not None:
            branches = {str(key): self.named(_ref_name(ref), skip=name)
                        for key, ref in discriminator["mapping"].items()}
            check = _discriminated(check, discriminator["propertyName"], branches)
        return check

    def own(self, node: dict[str, Any]) -> Check:
        """The node's own keywords (its inline allOf parts merged in)."""
        kind = node.get("type") or ("object" if "properties" in node or "required" in node else None)
        if kind == "object":
            props = tuple((prop, self.schema(sub)) for prop, sub in (node.get("properties") or {}).items())
            extra = node.get("additionalProperties")
            values = self.schema(extra) if isinstance(extra, dict) else None
            return _object(tuple(node.get("required", ())), props, values)
        if kind == "string":
            return _string(node.get("enum"), node.get("pattern"), node.get("minLength"), node.get("maxLength"))
        if "enum" in node:
            raise ValueError(f"enum on a {kind} is not supported")
        if kind == "integer":
            return _integer(node.get("format"))
        if kind == "number":
            return _number
        if kind == "boolean":
            return _boolean
        if kind == "array":
            items = self.schema(node["items"]) if "items" in node else None
            return _array(items, node.get("maxItems"))
        if kind is None:
            return lambda value: None
        raise ValueError(f"unsupported type {kind!r}")


def _merge(node: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """``allOf`` with an inline part: one object check instead of two."""
    merged = {**node, **{k: v for k, v in part.items() if k not in ("properties", "required", "description")}}
    props = dict(node.get("properties") or {})
    for prop, sub in (part.get("properties") or {}).items():
        props[prop] = {"allOf": [props[prop], sub]} if prop in props else sub
    if props:
        merged["properties"] = props
    required = list(node.get("required", ()))
    required += [r for r in part.get("required", ()) if r not in required]
    if required:
        merged["required"] = required
    merged.pop("allOf", None)
    return merged


def _prop(schemas: dict[str, Any], schema_name: str, prop: str) -> dict[str, Any]:
    """The schema of ``prop`` in ``schema_name``, wherever the file declares it."""
    schema = schemas[schema_name]
    for part in [schema, *schema.get("allOf", [])]:
        if prop in (part.get("properties") or {}):
            return cast("dict[str, Any]", part["properties"][prop])
    raise KeyError(f"{schema_name}.{prop} is not in the spec")


def _add_line_facts(schemas: dict[str, Any]) -> None:
    """What LINE's reference states in prose only (see the module docstring), and the
    fields the bot reads on any event declared on the base schemas, so that a type
    LINE adds later (checked against the base only) is held to them too."""
    _prop(schemas, "Event", "webhookEventId")["pattern"] = ULID_PATTERN
    # User, group and room sources declare these ids alike (a userId on each),
    # so the base holds them; every event type with a reply token declares it a string.
    schemas["Source"]["properties"].update(
        userId={"type": "string", "pattern": USER_ID_PATTERN}, groupId={"type": "string"}, roomId={"type": "string"})
    schemas["Event"]["properties"]["replyToken"] = {"type": "string"}


def _load(path: Path) -> Check:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as fh:
        schemas = yaml.load(fh, Loader=loader)["components"]["schemas"]
    _add_line_facts(schemas)
    return _Compiler(schemas).named("Event")


_EVENT: Check = _load(SPEC)

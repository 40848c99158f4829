"""Contract checks for requests sent to the fake LINE platform.

Every request body the bot sends is validated against LINE's OpenAPI
description as :mod:`simulator.openapi` loads and repairs it (discriminators
made explicit, LINE's documented limits added). This module is the checking
side: a Draft 4 validator extended with the hand-added keywords, a
discriminator-aware ``oneOf`` that validates only the branch a message's
``type`` names, and error messages shaped like the ``details`` LINE returns
(:class:`Violation`), so a refused request reads like LINE's answer.

Validators are cached per schema, so a check costs only the validation.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker, ValidationError, validators
from referencing import Registry
from referencing.jsonschema import DRAFT4

# The spec's locations and loader are re-exported: tests and the platform import them from here.
from simulator.openapi import MESSAGING_API_SPEC, SCHEMA_PREFIX, SPEC_DIR, WEBHOOK_SPEC, load_spec

__all__ = [
    "MESSAGING_API_SPEC",
    "SPEC_DIR",
    "WEBHOOK_SPEC",
    "ContractChecker",
    "LineValidator",
    "SchemaValidator",
    "Violation",
    "load_spec",
    "schema_validator",
]


@dataclass(frozen=True)
class Violation:
    """One contract violation, shaped like an item of LINE's ``details``."""

    property: str
    message: str

    def __str__(self) -> str:
        return f"{self.property}: {self.message}" if self.property else self.message

    def as_detail(self) -> dict[str, str]:
        """The ``{"message", "property"}`` object LINE puts in ``details``."""
        detail = {"message": self.message}
        if self.property:
            detail["property"] = self.property
        return detail


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _max_utf16_length(validator: Any, limit: int, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if isinstance(instance, str) and _utf16_length(instance) > limit:
        yield ValidationError(
            f"must be at most {limit} characters counted in UTF-16 code units "
            f"(got {_utf16_length(instance)})"
        )


def _max_length_when(validator: Any, rule: dict[str, Any], instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    value = instance.get(rule["property"])
    present = [name for name in rule["whenAny"] if instance.get(name)]
    if isinstance(value, str) and present and len(value) > rule["max"]:
        yield ValidationError(
            f"must be at most {rule['max']} characters when {' or '.join(present)} is set (got {len(value)})",
            path=[rule["property"]],
        )


_PLAIN_ONE_OF = Draft4Validator.VALIDATORS["oneOf"]


def _discriminated_one_of(validator: Any, one_of: list[Any], instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    """``oneOf`` that, for a rewritten discriminator, validates only the branch
    the discriminator names.

    The other branches are pinned to other values of the property, so they
    fail by construction: the result is the same as a plain ``oneOf``, at a
    tenth of the cost (a message list is otherwise validated against all 11
    message types, each with its quick reply and nested actions).
    """
    info = schema.get("x-discriminator")
    if info and isinstance(instance, dict):
        key = instance.get(info["propertyName"])
        target = info["mapping"].get(key) if isinstance(key, str) else None  # [] or {} is unhashable
        if target is not None:
            index = one_of.index({"$ref": SCHEMA_PREFIX + target})
            errors = list(validator.descend(instance, one_of[index], schema_path=index))
            if errors:
                yield ValidationError(f"not valid as {target}", context=errors)
            return
    yield from _PLAIN_ONE_OF(validator, one_of, instance, schema)


_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("uri")  # type: ignore[untyped-decorator]  # jsonschema's checks() is unannotated
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI_RE.match(value))


@_FORMATS.checks("uuid", raises=ValueError)  # type: ignore[untyped-decorator]  # as above
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


# Draft 4 is what OAS 3.0 schema objects are built on (boolean
# exclusiveMaximum, `id`); the two x- keywords carry the hand-added limits.
LineValidator = validators.extend(
    Draft4Validator,
    validators={
        "oneOf": _discriminated_one_of,
        "x-maxUtf16Length": _max_utf16_length,
        "x-maxLengthWhen": _max_length_when,
    },
)


def _property_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SchemaValidator:
    """Validates instances against one named schema of a (rewritten) spec."""

    def __init__(self, schema_name: str, spec_path: str | Path = MESSAGING_API_SPEC) -> None:
        doc = load_spec(spec_path)
        if schema_name not in doc["components"]["schemas"]:
            raise KeyError(f"no schema {schema_name!r} in {spec_path}")
        base_uri = "https://spec.invalid/" + Path(spec_path).name
        registry = Registry().with_resource(base_uri, DRAFT4.create_resource(doc))
        self.schema_name = schema_name
        self._validator = LineValidator(
            {"$ref": f"{base_uri}{SCHEMA_PREFIX}{schema_name}"},
            registry=registry,
            format_checker=_FORMATS,
        )

    def violations(self, instance: Any) -> list[Violation]:
        """Human-readable violations, the most specific error for each problem."""
        found: list[Violation] = []
        for error in self._validator.iter_errors(instance):
            found.extend(self._explain(error))
        return list(dict.fromkeys(found))  # stable de-duplication

    def _explain(self, error: ValidationError) -> list[Violation]:
        where = _property_path(error.absolute_path)
        keyword = error.validator
        if keyword == "oneOf" and "x-discriminator" in error.schema:
            return self._explain_discriminator(error, where)
        if keyword == "required":
            missing = re.match(r"'(.+)' is a required property", error.message)
            name = missing.group(1) if missing else str(error.validator_value)
            return [Violation(_property_path([*error.absolute_path, name]), "must be specified")]
        if keyword == "maxLength":
            return [Violation(where, f"must be at most {error.validator_value} characters (got {len(error.instance)})")]
        if keyword == "minLength":
            return [Violation(where, "may not be empty" if error.validator_value == 1 else
                              f"must be at least {error.validator_value} characters")]
        if keyword == "maxItems":
            return [Violation(where, f"must have at most {error.validator_value} items (got {len(error.instance)})")]
        if keyword == "minItems":
            return [Violation(where, f"must have at least {error.validator_value} items (got {len(error.instance)})")]
        if keyword == "enum":
            return [Violation(where, f"must be one of {error.validator_value} (got {_short(error.instance)})")]
        if keyword == "type":
            return [Violation(where, f"must be of type {error.validator_value} (got {_short(error.instance)})")]
        if keyword == "pattern":
            return [Violation(where, f"must match {error.validator_value} (got {_short(error.instance)})")]
        if keyword == "format":
            return [Violation(where, f"must be a valid {error.validator_value} (got {_short(error.instance)})")]
        message = error.message if len(error.message) <= 200 else error.message[:199] + "…"
        return [Violation(where, message)]

    def _explain_discriminator(self, error: ValidationError, where: str) -> list[Violation]:
        """Report the errors of the branch the discriminator selects, not the
        useless "is not valid under any of the given schemas"."""
        info = error.schema["x-discriminator"]
        prop, mapping = info["propertyName"], info["mapping"]
        instance = error.instance
        prop_path = f"{where}.{prop}" if where else prop
        if not isinstance(instance, dict):
            return [Violation(where, f"must be an object ({info['schema']}) (got {_short(instance)})")]
        if prop not in instance:
            return [Violation(prop_path, "must be specified")]
        value = instance[prop]
        if not isinstance(value, str) or value not in mapping:
            return [Violation(prop_path, f"unknown {info['schema']} type {_short(value)}; "
                                         f"expected one of {sorted(mapping)}")]
        branch = list(dict.fromkeys(mapping.values())).index(mapping[value])
        explained: list[Violation] = []
        for sub in error.context or []:
            if sub.relative_schema_path and sub.relative_schema_path[0] == branch:
                explained.extend(self._explain(sub))
        return explained or [Violation(where, error.message[:200])]


@functools.lru_cache(maxsize=None)
def _schema_validator(schema_name: str, spec_path: Path) -> SchemaValidator:
    return SchemaValidator(schema_name, spec_path)


def schema_validator(schema_name: str, spec_path: str | Path = MESSAGING_API_SPEC) -> SchemaValidator:
    """A cached :class:`SchemaValidator` for a schema of the given spec."""
    return _schema_validator(schema_name, Path(spec_path).resolve())


class ContractChecker:
    """Checks request bodies of the endpoints the fake platform implements.

    Endpoints not listed in :attr:`BODY_SCHEMAS` get no body check; that is
    deliberate (they take no JSON body, or the platform does not serve them).
    """

    BODY_SCHEMAS: dict[tuple[str, str], str] = {
        ("POST", "/v2/bot/message/reply"): "ReplyMessageRequest",
        ("POST", "/v2/bot/message/push"): "PushMessageRequest",
        ("POST", "/v2/bot/message/multicast"): "MulticastRequest",
        ("POST", "/v2/bot/richmenu"): "RichMenuRequest",
        ("POST", "/v2/bot/richmenu/validate"): "RichMenuRequest",
        ("POST", "/v2/bot/chat/loading/start"): "ShowLoadingAnimationRequest",
    }

    def __init__(self, spec_path: str | Path = MESSAGING_API_SPEC) -> None:
        self.spec_path = Path(spec_path)
        load_spec(self.spec_path)  # parse now, not on the first request

    def schema_for(self, method: str, path: str) -> str | None:
        return self.BODY_SCHEMAS.get((method.upper(), path.rstrip("/") or "/"))

    def violations(self, method: str, path: str, body: Any) -> list[Violation]:
        """Structured violations (property + message) for LINE-style errors."""
        schema_name = self.schema_for(method, path)
        if schema_name is None:
            return []
        if body is None:
            return [Violation("", "the request body is required")]
        return schema_validator(schema_name, self.spec_path).violations(body)

    def check(self, method: str, path: str, body: dict[str, Any] | None) -> list[str]:
        """Human-readable violations; an empty list means the body is valid."""
        return [str(v) for v in self.violations(method, path, body)]

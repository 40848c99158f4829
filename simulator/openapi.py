"""LINE's OpenAPI files, loaded and rewritten so a JSON Schema validator enforces them.

The fake platform must refuse whatever the real one would, so every request
body the bot sends is validated (:mod:`simulator.contract`) against LINE's own
OpenAPI description (``simulator/spec/messaging-api.yml``, vendored verbatim).
That file alone is not enough, for two reasons this module fixes in memory
(the vendored file stays untouched):

* **Discriminators.** The spec models polymorphism (message types, actions,
  Flex components, templates…) with OAS ``discriminator`` + ``allOf``
  inheritance. JSON Schema validators ignore ``discriminator``, so
  ``{"type": "text"}`` without ``text`` or ``{"type": "bogus"}`` would pass.
  Every schema with a ``discriminator.mapping`` is rewritten into a ``oneOf``
  over its mapping targets; each target is pinned to its key
  (``properties.<propertyName>.enum``) and made to require the property, and
  the targets inherit from a copy of the parent without the discriminator so
  the rewrite does not recurse.
* **Documented limits missing from the spec** (5,000 UTF-16 units of text,
  20-character labels, 300-character postback data, 1,500-character alt
  text, template text lengths, which actions a quick reply may hold…) are
  added by hand in :func:`_add_line_limits`, each with the reason.

Kept apart from the validator because it is about *what* LINE accepts (data
and its repairs), not *how* a body is checked. Parsing and rewriting happen
once per process (``functools.lru_cache``).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

SPEC_DIR = Path(__file__).resolve().parent / "spec"
MESSAGING_API_SPEC = SPEC_DIR / "messaging-api.yml"
WEBHOOK_SPEC = SPEC_DIR / "webhook.yml"

SCHEMA_PREFIX = "#/components/schemas/"
_BASE_SUFFIX = "__base"

# Where LINE lets each action type appear (Messaging API reference, "Action
# objects"): camera, camera roll and location exist only on quick reply
# buttons; rich menu switch only in rich menus.
QUICK_REPLY_ACTION_TYPES = [
    "postback", "message", "uri", "datetimepicker",
    "camera", "cameraRoll", "location", "clipboard",
]
MESSAGE_ACTION_TYPES = ["postback", "message", "uri", "datetimepicker", "clipboard"]

LINE_ID_PATTERN = "^[UCR][0-9a-f]{32}$"
USER_ID_PATTERN = "^U[0-9a-f]{32}$"


def _load_yaml(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster
    with path.open("rb") as fh:
        spec: dict[str, Any] = yaml.load(fh, Loader=loader)
        return spec


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMA_PREFIX + name}


def _ref_name(ref: str) -> str:
    if not ref.startswith(SCHEMA_PREFIX):
        raise ValueError(f"unsupported discriminator target {ref!r}")
    return ref[len(SCHEMA_PREFIX):]


def _rewrite_discriminators(schemas: dict[str, Any]) -> None:
    """Turn every ``discriminator.mapping`` into an explicit, pinned ``oneOf``.

    ``Parent`` becomes ``{"oneOf": [$ref Child…], "x-discriminator": …}``;
    the original body moves to ``Parent__base`` and every child's
    ``allOf: [$ref Parent]`` is pointed at the base, otherwise validating a
    child would re-enter the ``oneOf`` forever.
    """
    parents = [
        name for name, schema in schemas.items()
        if isinstance(schema, dict) and (schema.get("discriminator") or {}).get("mapping")
    ]
    for name in parents:
        parent = schemas[name]
        discriminator = parent["discriminator"]
        prop = discriminator["propertyName"]
        keys_by_target: dict[str, list[str]] = defaultdict(list)
        for key, target_ref in discriminator["mapping"].items():
            keys_by_target[_ref_name(target_ref)].append(str(key))

        base_name = name + _BASE_SUFFIX
        schemas[base_name] = {k: v for k, v in parent.items() if k != "discriminator"}
        parent_ref = SCHEMA_PREFIX + name
        for target, keys in keys_by_target.items():
            child = schemas[target]
            child["allOf"] = [
                _ref(base_name) if part == {"$ref": parent_ref} else part
                for part in child.get("allOf", [])
            ]
            child["allOf"].append(
                {"properties": {prop: {"type": "string", "enum": keys}}, "required": [prop]}
            )
        schemas[name] = {
            "oneOf": [_ref(target) for target in keys_by_target],
            "x-discriminator": {
                "schema": name,
                "propertyName": prop,
                "mapping": {key: target for target, keys in keys_by_target.items() for key in keys},
            },
        }


def _rewrite_nullable(node: Any) -> None:
    """OAS 3.0 ``nullable: true`` means JSON Schema ``type: [T, "null"]``."""
    if isinstance(node, dict):
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
        for value in node.values():
            _rewrite_nullable(value)
    elif isinstance(node, list):
        for value in node:
            _rewrite_nullable(value)


def _prop(schemas: dict[str, Any], schema_name: str, prop: str) -> dict[str, Any]:
    """The schema of ``prop`` in ``schema_name``, wherever the spec declared it
    (top-level ``properties`` or one of the ``allOf`` parts)."""
    schema = schemas[schema_name]
    for part in [schema, *schema.get("allOf", [])]:
        props = part.get("properties") or {}
        if prop in props:
            found: dict[str, Any] = props[prop]
            return found
    raise KeyError(f"{schema_name}.{prop} is not in the spec")


def _part(schemas: dict[str, Any], schema_name: str) -> dict[str, Any]:
    """The schema dict of ``schema_name`` where extra keywords may be added
    (never a dict holding ``$ref``: Draft 4 ignores ``$ref``'s siblings)."""
    schema: dict[str, Any] = schemas[schema_name]
    if "$ref" in schema:
        raise ValueError(f"{schema_name} is a bare $ref")
    return schema


def _require(schema: dict[str, Any], *names: str) -> None:
    required = schema.setdefault("required", [])
    required.extend(n for n in names if n not in required)


def _replace(schema: dict[str, Any], new: dict[str, Any]) -> None:
    """Replace a schema in place (a ``$ref`` cannot take extra keywords)."""
    schema.clear()
    schema.update(new)


def _action_in(allowed_types: list[str], *, label_required: bool) -> dict[str, Any]:
    """An Action restricted to the types LINE allows in that place."""
    extra: dict[str, Any] = {"properties": {"type": {"enum": allowed_types}}, "required": ["type"]}
    if label_required:
        extra["required"].append("label")
        extra["properties"]["label"] = {"type": "string", "minLength": 1}
    return {"allOf": [_ref("Action"), extra]}


def _add_line_limits(schemas: dict[str, Any]) -> None:
    """LINE's documented limits that the OpenAPI file does not carry.

    Each number is from the Messaging API reference; where the reference and
    the spec agree already (5 messages per request, 13 quick reply items,
    500 multicast recipients, 300 characters of postback data) the spec's
    own keyword does the work and nothing is added here.
    """
    # Text: 5,000 characters *counted in UTF-16 code units* (an emoji outside
    # the BMP counts twice), and never empty.
    for name in ("TextMessage", "TextMessageV2"):
        text = _prop(schemas, name, "text")
        text["x-maxUtf16Length"] = 5000
        text["minLength"] = 1

    for name in ("TemplateMessage", "FlexMessage", "ImagemapMessage"):
        alt = _prop(schemas, name, "altText")
        alt["maxLength"] = 1500
        alt["minLength"] = 1

    # Actions: labels up to 20 characters everywhere we use them (Flex
    # buttons accept 40 in the reference, but 20 is what renders untruncated
    # on every client), and the fields each type needs.
    _prop(schemas, "Action__base", "label")["maxLength"] = 20
    _require(schemas["MessageAction"], "text")
    _prop(schemas, "MessageAction", "text")["maxLength"] = 300
    _require(schemas["PostbackAction"], "data")
    _prop(schemas, "PostbackAction", "displayText")["maxLength"] = 300
    _prop(schemas, "PostbackAction", "text")["maxLength"] = 300
    _require(schemas["DatetimePickerAction"], "data", "mode")
    _require(schemas["URIAction"], "uri")
    _prop(schemas, "URIAction", "uri")["maxLength"] = 1000

    # Quick reply: each item is an action button with a label, and only some
    # action types may be used there.
    item = _part(schemas, "QuickReplyItem")
    _require(item, "type", "action")
    item["properties"]["type"] = {"type": "string", "enum": ["action"]}
    item["properties"]["action"] = _action_in(QUICK_REPLY_ACTION_TYPES, label_required=True)
    _prop(schemas, "QuickReply", "items")["minItems"] = 1
    _require(schemas["QuickReply"], "items")

    # Templates.
    in_template = _action_in(MESSAGE_ACTION_TYPES, label_required=True)
    buttons = schemas["ButtonsTemplate"]
    _prop(schemas, "ButtonsTemplate", "text")["maxLength"] = 160
    buttons["x-maxLengthWhen"] = {"property": "text", "max": 60, "whenAny": ["thumbnailImageUrl", "title"]}
    _prop(schemas, "ButtonsTemplate", "title")["maxLength"] = 40
    actions = _prop(schemas, "ButtonsTemplate", "actions")
    actions.update(minItems=1, maxItems=4, items=in_template)
    _replace(_prop(schemas, "ButtonsTemplate", "defaultAction"),
             _action_in(MESSAGE_ACTION_TYPES, label_required=False))

    _prop(schemas, "ConfirmTemplate", "text")["maxLength"] = 240
    _prop(schemas, "ConfirmTemplate", "actions").update(minItems=2, maxItems=2, items=in_template)

    _prop(schemas, "CarouselTemplate", "columns").update(minItems=1, maxItems=10)
    column = schemas["CarouselColumn"]
    column["properties"]["text"]["maxLength"] = 120
    column["x-maxLengthWhen"] = {"property": "text", "max": 60, "whenAny": ["thumbnailImageUrl", "title"]}
    column["properties"]["title"]["maxLength"] = 40
    column["properties"]["actions"].update(minItems=1, maxItems=3, items=in_template)
    _prop(schemas, "ImageCarouselTemplate", "columns").update(minItems=1, maxItems=10)
    schemas["ImageCarouselColumn"]["properties"]["action"] = _action_in(
        MESSAGE_ACTION_TYPES, label_required=False)

    # Flex: a button's action is what the user reads, so it needs a label;
    # a carousel holds at most 12 bubbles.
    _replace(_prop(schemas, "FlexButton", "action"), _action_in(MESSAGE_ACTION_TYPES, label_required=True))
    _prop(schemas, "FlexCarousel", "contents").update(minItems=1, maxItems=12)

    # Recipients must be real LINE ids (LINE answers 400 "The property, 'to',
    # in the request body is invalid" otherwise).
    _prop(schemas, "PushMessageRequest", "to")["pattern"] = LINE_ID_PATTERN
    _prop(schemas, "MulticastRequest", "to")["items"]["pattern"] = USER_ID_PATTERN
    _prop(schemas, "ShowLoadingAnimationRequest", "chatId")["pattern"] = USER_ID_PATTERN
    _prop(schemas, "ShowLoadingAnimationRequest", "loadingSeconds")["multipleOf"] = 5

    # Rich menus: everything but the areas' labels is mandatory, 20 areas max,
    # and the image is 800-2500 px wide and at least 250 px high.
    _require(schemas["RichMenuRequest"], "size", "selected", "name", "chatBarText", "areas")
    _prop(schemas, "RichMenuRequest", "areas")["maxItems"] = 20
    _require(schemas["RichMenuArea"], "bounds", "action")
    _require(schemas["RichMenuSize"], "width", "height")
    schemas["RichMenuSize"]["properties"]["width"].update(minimum=800, maximum=2500)
    schemas["RichMenuSize"]["properties"]["height"]["minimum"] = 250
    _require(schemas["RichMenuBounds"], "x", "y", "width", "height")


def load_spec(path: str | Path = MESSAGING_API_SPEC) -> dict[str, Any]:
    """The spec at ``path``, parsed and rewritten once per process.

    Callers must treat the result as read-only: it is shared.
    """
    return _load_spec(Path(path).resolve())


@functools.lru_cache(maxsize=None)
def _load_spec(path: Path) -> dict[str, Any]:
    doc = _load_yaml(path)
    schemas = doc["components"]["schemas"]
    _rewrite_nullable(schemas)
    _rewrite_discriminators(schemas)
    if path == MESSAGING_API_SPEC.resolve():
        _add_line_limits(schemas)
    return doc

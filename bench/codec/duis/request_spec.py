"""How a DUIS Service Request is declared, and the one reader, writer and summary all share.

A request is a dataclass whose body fields each carry their DUIS element in the field's metadata
(`element("FirmwareHash", FIRMWARE_HASH)`), and whose class carries a `RequestSpec`: the Service
Reference, how the header's ServiceReferenceVariant may read, the Command Variant and the body
element. `declared` checks the declaration once, when the class is made, and binds each body
field to its element; `read_body`, `write_body` and `summarise_body` then serve every request alike, so a
new request is one declaration and nothing else in this package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from lxml import etree

from bench.codec.duis.document import elements, local, sr_name, sub, text_of
from bench.codec.duis.fields import (
    RequestID,
    check_firmware_version,
    read_base64,
    read_datetime,
    read_eui_list,
    read_firmware_version,
    read_hex,
    write_base64,
    write_datetime,
    write_eui_list,
)
from bench.domain import MAX_DEVICES, MAX_IMAGE_BYTES, CommandVariant, Eui, ServiceReference
from bench.errors import DecodeError, EncodeError

V = TypeVar("V")
R = TypeVar("R", bound="Request")

_METADATA_KEY = "duis"
_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True)
class Codec(Generic[V]):
    """One DUIS simple type: read from element text, written to it, shown in a JSON summary.

    `read(text, element)` raises DecodeError naming the element; `write(value, element)` raises
    EncodeError for a value the schema would refuse, so nothing invalid is ever written.
    """

    read: Callable[[str, str], V]
    write: Callable[[V, str], str]
    show: Callable[[V], object]


def _write_image(image: bytes, name: str) -> str:
    if len(image) > MAX_IMAGE_BYTES:
        raise EncodeError(f"{name}: {len(image)} bytes exceeds {MAX_IMAGE_BYTES}")
    return write_base64(image)


def _write_hash(digest: bytes, name: str) -> str:
    if len(digest) != 32:
        raise EncodeError(f"{name} must be 32 bytes")
    return digest.hex().upper()


def _write_payload(payload: bytes, name: str) -> str:
    if not payload:
        raise EncodeError(f"{name} must not be empty")
    return write_base64(payload)


def _show_image(image: bytes) -> dict[str, object]:
    return {"size": len(image), "sha256": hashlib.sha256(image).hexdigest()}


# The simple types of the firmware Service Requests.
FIRMWARE_IMAGE: Codec[bytes] = Codec(
    lambda text, name: read_base64(text, name, MAX_IMAGE_BYTES), _write_image, _show_image
)
FIRMWARE_VERSION: Codec[str] = Codec(
    read_firmware_version, check_firmware_version, lambda version: version
)
DEVICE_LIST: Codec[list[bytes]] = Codec(
    lambda text, name: read_eui_list(text, name, MAX_DEVICES),
    lambda euis, name: write_eui_list(euis, name, MAX_DEVICES),
    lambda euis: [str(Eui(eui)) for eui in euis],
)
FIRMWARE_HASH: Codec[bytes] = Codec(
    lambda text, name: read_hex(text, name, 32), _write_hash, lambda digest: digest.hex().upper()
)
GBCS_PAYLOAD: Codec[bytes] = Codec(
    read_base64, _write_payload, lambda payload: payload.hex().upper()
)
EXECUTION_TIME: Codec[datetime] = Codec(
    read_datetime, lambda when, _name: write_datetime(when), lambda when: when.isoformat()
)


@dataclass(frozen=True)
class Element:
    """A body element as declared on a request field (`element(...)`)."""

    name: str  # the DUIS element
    codec: Codec[Any]
    key: str  # its key in the JSON summary
    leading: bool  # DUIS puts it ahead of the body's own elements (ExecutionDateTime)


@dataclass(frozen=True)
class BodyField:
    """A declared element bound to the request attribute that holds its value."""

    element: Element
    attribute: str
    optional: bool  # absent from the body = None (the field's default)


def element(
    name: str, codec: Codec[Any], *, key: str | None = None, leading: bool = False
) -> Mapping[str, Element]:
    """The metadata of a request field that is the body element `name` (`field(metadata=...)`)."""
    snake = _SNAKE.sub("_", name).lower()
    return {_METADATA_KEY: Element(name, codec, key or snake, leading)}


EXECUTION_DATE_TIME = element("ExecutionDateTime", EXECUTION_TIME, leading=True)


class VariantRule(Enum):
    """How the header's ServiceReference and ServiceReferenceVariant may read."""

    FIXED = "the declared Service Reference, as its own variant"
    # A signed pre-command (CV 5) names the critical SR it completes, and may name a variant of
    # it; the request keeps both. The DCC decides whether that SR has CV 5 (E12 when not).
    CARRIED = "any Service Reference the bench knows, and that reference or a variant of it"


@dataclass(frozen=True)
class RequestSpec:
    """What a request class is in DUIS: its SR, variant rule, Command Variant and body element."""

    service_reference: ServiceReference
    command_variant: CommandVariant
    body_tag: str
    variant_rule: VariantRule = VariantRule.FIXED
    # Filled by `declared` from the dataclass fields, in schema order.
    fields: tuple[BodyField, ...] = ()


class Request:
    """What every declared Service Request has: a RequestID, and its spec's header values."""

    spec: ClassVar[RequestSpec]
    request_id: RequestID

    @property
    def service_reference(self) -> ServiceReference:
        return self.spec.service_reference

    @property
    def service_reference_variant(self) -> str:
        return str(self.spec.service_reference)

    @property
    def command_variant(self) -> CommandVariant:
        return self.spec.command_variant


def declared(cls: type[R]) -> type[R]:
    """Check a request dataclass against its spec, and bind its body fields in schema order.

    Every field but `request_id` (and a carried SR's `reference`/`variant`) must name its
    element; an optional element is a field whose default is None.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__}: declare the dataclass, then `declared`")
    spec = cls.spec
    header = {"request_id"}
    if spec.variant_rule is VariantRule.CARRIED:
        header |= {"reference", "variant"}
    bound: list[tuple[bool, int, BodyField]] = []
    for position, item in enumerate(dataclasses.fields(cls)):
        declaration = item.metadata.get(_METADATA_KEY)
        if item.name in header:
            continue
        if not isinstance(declaration, Element):
            raise TypeError(f"{cls.__name__}.{item.name} names no DUIS element")
        optional = item.default is None
        bound.append((not declaration.leading, position, BodyField(declaration, item.name, optional)))
    missing = header - {item.name for item in dataclasses.fields(cls)}
    if missing:
        raise TypeError(f"{cls.__name__} lacks {sorted(missing)}")
    cls.spec = dataclasses.replace(spec, fields=tuple(f for *_order, f in sorted(bound)))
    return cls


# ---------------------------------------------------------------- the one reader, writer, summary


def check_reference(spec: RequestSpec, reference: str, variant: str) -> ServiceReference:
    """The header's Service Reference, if the spec's variant rule allows it with this variant."""
    if spec.variant_rule is VariantRule.CARRIED:
        known = {str(sr): sr for sr in ServiceReference}
        if reference in known and (variant == reference or variant.startswith(reference + ".")):
            return known[reference]
        raise DecodeError(
            "DUIS",
            "ServiceReferenceVariant",
            None,
            f"{reference!r}/{variant!r} is not a known Service Reference and a variant of it",
        )
    if reference != spec.service_reference or variant != reference:
        raise DecodeError(
            "DUIS",
            "ServiceReference",
            None,
            f"{spec.body_tag} does not belong to service reference {reference}/{variant}",
        )
    return spec.service_reference


def read_body(body: etree._Element, spec: RequestSpec) -> dict[str, Any]:
    """Each declared element of the body, read by its codec, keyed by attribute; unknown,
    misplaced or repeated children are refused, and so is a missing required one."""
    names = [f.element.name for f in spec.fields]
    texts: dict[str, str] = {}
    position = 0
    for child in elements(body):
        name = sr_name(child)
        if name not in names[position:]:
            raise DecodeError("DUIS", local(body), None, f"unexpected or misplaced element {name!r}")
        position = names.index(name) + 1
        texts[name] = text_of(child)
    values: dict[str, Any] = {}
    for body_field in spec.fields:
        name = body_field.element.name
        if name in texts:
            values[body_field.attribute] = body_field.element.codec.read(texts[name], name)
        elif body_field.optional:
            values[body_field.attribute] = None
        else:
            raise DecodeError("DUIS", name, None, f"missing from {local(body)}")
    return values


def write_body(parent: etree._Element, request: Request) -> None:
    """The request's body element with each declared element its value holds, in schema order."""
    spec = request.spec
    body = sub(parent, spec.body_tag)
    for body_field in spec.fields:
        value = getattr(request, body_field.attribute)
        name = body_field.element.name
        if value is None:
            if body_field.optional:
                continue
            raise EncodeError(f"{name} is required in {spec.body_tag}")
        sub(body, name, body_field.element.codec.write(value, name))


def summarise_body(request: Request) -> dict[str, object]:
    """Each declared element as its codec shows it (an absent optional one as None)."""
    summary: dict[str, object] = {}
    for body_field in request.spec.fields:
        value = getattr(request, body_field.attribute)
        summary[body_field.element.key] = (
            None if value is None else body_field.element.codec.show(value)
        )
    return summary

"""How a rig file's TOML tables become typed classes (cattrs), and how a refusal is told.

TOML already gives typed values, so the converter is strict: a string is never taken for a
number or a flag (`baud = "fast"`, `sleepy = "yes"` are refused), an integer is taken for a
float. The classes' own attrs validators say what a well-typed value may not be
(`FieldError`). Whatever the failure, `first_failure` finds the first one and names its table
and field, so a rig file's mistake is one line: `rigs/x.toml: device 'esme' (00DB...): field
'baud': must be positive, got -5`.

A new table is a new attrs class with its validators, registered with `table()`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, IntEnum, StrEnum
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import AttributeOverride, make_dict_structure_fn

T = TypeVar("T")


class FieldError(ValueError):
    """One value of a rig file refused: the field (None: the value itself) and why.

    `where` (a table, or `device 'esme' (EUI)`) is set by whoever knows it best; else the
    table the field sits in is named from the path the failure was found under.
    """

    def __init__(self, field: str | None, reason: str, where: str | None = None) -> None:
        super().__init__(reason)
        self.field, self.reason, self.where = field, reason, where


def positive(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    """attrs validator: a count or a number of seconds above zero (None: not set)."""
    if value is not None and value <= 0:
        raise FieldError(attribute.name, f"must be positive, got {value}")


def between(low: int, high: int) -> Callable[[Any, attrs.Attribute[Any], int | None], None]:
    """attrs validator: an integer in low..high (None: not set)."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is not None and not low <= value <= high:
            raise FieldError(attribute.name, f"{value} outside {low}..{high}")

    return check


def _strict(kind: type, name: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _type: Any) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise FieldError(None, f"expected {name}, got {value!r}")
        return value

    return structure


def _float(value: Any, _type: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(None, f"expected float, got {value!r}")
    return float(value)


def enum_of(value: Any, kind: type[Enum]) -> Enum:
    """A member of `kind` by its value (a structure hook; `kind` from the annotation)."""
    if not issubclass(kind, IntEnum):
        text_of(value)
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(str(member.value) for member in kind)
        raise FieldError(None, f"{value!r} is not one of {known}") from None


def text_of(value: Any) -> str:
    """The value of a field TOML must give as a string."""
    if not isinstance(value, str):
        raise FieldError(None, f"expected str, got {value!r}")
    return value


def table_of(value: Any) -> dict[str, Any]:
    """The value of a field TOML must give as a table."""
    if not isinstance(value, dict):
        raise FieldError(None, f"expected dict, got {value!r}")
    return value


CONVERTER = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
CONVERTER.register_structure_hook(str, _strict(str, "str"))
CONVERTER.register_structure_hook(int, _strict(int, "int"))
CONVERTER.register_structure_hook(bool, _strict(bool, "bool"))
CONVERTER.register_structure_hook(float, _float)
# StrEnum and IntEnum come before str and int in their members' MRO: these hooks win for enums
for _enum_kind in (Enum, StrEnum, IntEnum):
    CONVERTER.register_structure_hook(_enum_kind, enum_of)

_FILE_NAMES: dict[type, dict[str, str]] = {}  # class -> attribute -> its name in the file
_NOT_IN_FILE: dict[type, frozenset[str]] = {}  # class -> attributes its reader fills in


def table(cls: type[T], not_in_file: tuple[str, ...] = (), **fields: AttributeOverride) -> None:
    """Register how a TOML table becomes `cls`: its fields checked, unknown fields refused.

    `fields` overrides single fields (another name in the file, a hook of their own);
    `not_in_file` names attributes the reader supplies (a device's role: its table's key).
    """
    _NOT_IN_FILE[cls] = frozenset(not_in_file)
    _FILE_NAMES[cls] = {name: getattr(override, "rename", None) or name
                        for name, override in fields.items()}
    built: list[Callable[[Any, Any], T]] = []  # generated on first use: importing stays cheap

    def structure_table(value: Any, _type: Any) -> T:
        if not built:
            built.append(make_dict_structure_fn(cls, CONVERTER, **fields))  # type: ignore[arg-type]
        return built[0](table_of(value), cls)

    CONVERTER.register_structure_hook(cls, structure_table)


def file_names(cls: type) -> list[str]:
    """The fields a table of `cls` may have, as the file spells them."""
    renamed = _FILE_NAMES.get(cls, {})
    hidden = _NOT_IN_FILE.get(cls, frozenset())
    return sorted(renamed.get(a.name, a.name) for a in attrs.fields(cls)
                  if a.init and a.name not in hidden)


REFUSALS = (BaseValidationError, ForbiddenExtraKeysError, FieldError)
"""What structuring a table raises when the file is wrong (`first_failure` tells which)."""


def structure(value: Any, cls: type[T]) -> T:
    return CONVERTER.structure(value, cls)


def first_failure(exc: BaseException, path: tuple[str, ...] = ()) -> tuple[str | None,
                                                                         tuple[str, ...], str]:
    """(where, path, reason) of the first failure in a structuring error: `where` as a
    FieldError set it (else None), the path of tables and fields down to the value."""
    if isinstance(exc, FieldError):  # a `where` names the table itself: the path is the field
        field = (exc.field,) if exc.field else ()
        return exc.where, (field if exc.where else path + field), exc.reason
    if isinstance(exc, ForbiddenExtraKeysError):
        name = sorted(exc.extra_fields)[0]
        known = ", ".join(file_names(exc.cl))
        return None, path + (name,), f"unknown field (known: {known})"
    if isinstance(exc, ClassValidationError | IterableValidationError):
        inner = exc.exceptions[0]
        step: tuple[str, ...] = ()
        renamed = _FILE_NAMES.get(exc.cl, {}) if isinstance(exc, ClassValidationError) else {}
        for note in getattr(inner, "__notes__", ()):
            attribute, index = getattr(note, "name", None), getattr(note, "index", None)
            if attribute is not None:
                step = (str(renamed.get(str(attribute), attribute)),)
            elif index is not None:
                step = (str(index),)
        if isinstance(inner, KeyError) and step:
            return None, path + step, "is required"
        return first_failure(inner, path + step)
    return None, path, str(exc)

"""Shared decoding: JSON object, ``schema`` check, machine id check, pydantic errors mapped to typed errors."""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import ValidationError

from pdm.contract.errors import (
    FieldValueError,
    MachineMismatchError,
    MissingFieldError,
    NotJSONError,
    OutOfRangeError,
    SchemaVersionError,
    TimestampError,
    TooDeepError,
    TooLongError,
)
from pdm.contract.topics import NAME_RULE, is_valid_name

SCHEMA = 1
Payload = bytes | bytearray | memoryview | str | Mapping[str, Any]


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 3, 80, 40, 80


def short(value: object, limit: int = 60) -> str:
    """``repr`` of a found value, cut to ``limit`` characters (bounded work whatever the value's size or depth)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_object(payload: Payload, what: str) -> dict[str, Any]:
    """The payload as a JSON object (``dict``); :class:`NotJSONError` otherwise."""
    if isinstance(payload, Mapping):
        return dict(payload)
    raw = bytes(payload) if isinstance(payload, bytearray | memoryview) else payload
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise TooDeepError(f"{what}: found JSON nested deeper than the decoder's limit (about "
                           "1000 levels), expected a JSON object of a few levels") from None
    except UnicodeDecodeError as exc:
        raise NotJSONError(f"{what}: found bytes that are not UTF-8 ({exc.reason} at byte {exc.start}), expected "
                           "UTF-8 JSON") from None
    except ValueError as exc:
        shown = raw[:40] if raw else raw
        raise NotJSONError(f"{what}: found {short(shown)} which is not JSON ({exc}), expected a JSON object") from None
    if not isinstance(obj, dict):
        raise NotJSONError(f"{what}: found a JSON {type(obj).__name__}, expected a JSON object")
    return obj


def check_schema(obj: Mapping[str, Any], what: str, required: bool = True) -> None:
    """``schema`` must be the integer 1 (may be absent only when ``required`` is false)."""
    if "schema" not in obj:
        if required:
            raise SchemaVersionError(f"{what}: found no 'schema' key, expected \"schema\": {SCHEMA}")
        return
    value = obj["schema"]
    if type(value) is not int or value != SCHEMA:
        raise SchemaVersionError(f"{what}: found schema {short(value)}, expected {SCHEMA} (this code understands "
                                 f"schema {SCHEMA} only; a newer producer needs a newer consumer)")


def check_machine_id(value: object, what: str, topic_machine: str | None) -> str:
    """A valid machine id equal to the topic's MACHINE (when given)."""
    if not is_valid_name(value):
        raise FieldValueError(f"{what}: machine_id: found {short(value)}, expected {NAME_RULE}")
    if topic_machine is not None and value != topic_machine:
        raise MachineMismatchError(f"{what}: machine_id: found {value!r}, expected {topic_machine!r} (the "
                                   "topic's MACHINE)")
    return value


def is_number(value: object) -> bool:
    """A finite JSON number (``bool`` is not a number here; an integer of any size is finite)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def raise_validation(exc: ValidationError, what: str) -> NoReturn:
    """Turn pydantic's first error into a typed, one-line 'found X, expected Y' error."""
    errors = exc.errors()
    err = errors[0]
    loc = ".".join(str(p) for p in err["loc"])
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    where = f"{what}: {loc}" if loc else what
    if err["type"] == "missing":
        raise MissingFieldError(f"{what}: found no key {loc!r}, expected it (see docs/mqtt-contract.md){more}")
    typed = _TYPED.get(err["type"])
    if typed is not None:
        raise typed(f"{where}: {err['msg']}{more}")
    msg = err["msg"]
    if err["type"] == "value_error":
        raise FieldValueError(f"{where}: {msg.removeprefix('Value error, ')}{more}")
    if err["type"] in ("string_too_long", "too_long"):
        unit = "characters" if isinstance(err["input"], str) else "items"
        raise TooLongError(f"{where}: found {_size(err['input'])}, expected at most "
                           f"{err.get('ctx', {}).get('max_length')} {unit}{more}")
    if err["type"] == "string_pattern_mismatch":
        expected = f"a string matching {err.get('ctx', {}).get('pattern')}"
    elif msg.startswith("Input should be "):
        expected = msg.removeprefix("Input should be ")
    else:
        expected = msg[0].lower() + msg[1:]
    raise FieldValueError(f"{where}: found {short(err['input'])}, expected {expected}{more}")


_TYPED: dict[str, type[FieldValueError]] = {"bad_timestamp": TimestampError, "out_of_range": OutOfRangeError}


def _size(value: object) -> str:
    return f"{len(value)} {'characters' if isinstance(value, str) else 'items'}" if hasattr(value, "__len__") \
        else short(value)

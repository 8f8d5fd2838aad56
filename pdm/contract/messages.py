"""Truth, maintenance, alert, state, status and rejected payloads (pydantic models, strict types).

Build with the model (``TruthEvent(...)``) and send ``.encode()``; receive with ``parse_<kind>(payload, ...)``,
which raises a typed :class:`pdm.contract.errors.ContractError` that says what was found and what was expected.
Bounds (`pdm.contract.limits`): times before 2100 (``bad_timestamp``), short texts at most 200 characters and a
maintenance ``reason`` at most 1000 (``too_long``), at most 64 ``contributions``.

>>> e = TruthEvent(machine_id="pump-007", ts=1.0, event="start", fault="stuck", kind="sensor",
...                sensor="temperature", fault_id="pump-007-3")
>>> parse_truth(e.encode(), machine_id="pump-007") == e
True
>>> alert_id("pump-007", 1795406400.0)
'pump-007-1795406400000'
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from pdm.contract._decode import Payload, check_machine_id, check_schema, decode_object, raise_validation
from pdm.contract.errors import TopicMismatchError
from pdm.contract.limits import MAX_CONTRIBUTIONS, MAX_DETAIL, MAX_REASON, MAX_TEXT, MAX_TOPIC, MAX_TS, iso
from pdm.contract.topics import NAME_PATTERN


def _before_2100(value: float) -> float:
    if value >= MAX_TS:
        raise PydanticCustomError("bad_timestamp", "found {found} ({when}), expected epoch seconds before "
                                  "2100-01-01 (seconds, not milliseconds)", {"found": value, "when": iso(value)})
    return value


Name = Annotated[str, StringConstraints(pattern=f"^{NAME_PATTERN}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
Epoch = Annotated[float, Field(ge=0), AfterValidator(_before_2100)]
Shares = Annotated[dict[Annotated[str, StringConstraints(max_length=MAX_TEXT)], Annotated[float, Field(ge=0)]],
                   Field(max_length=MAX_CONTRIBUTIONS)]
EXCERPT_BYTES = 200


class Message(BaseModel):
    """Base: strict types, unknown fields ignored, ``schema`` always 1."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", populate_by_name=True, frozen=True)
    schema_: Literal[1] = Field(default=1, alias="schema")

    def encode(self) -> bytes:
        """Compact JSON bytes (field names as in the contract)."""
        return self.model_dump_json(by_alias=True).encode()


class ModelRef(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    name: Text
    version: Text


class TruthEvent(Message):
    machine_id: Name
    ts: Epoch
    event: Literal["start", "end"]
    fault: Text
    kind: Literal["machine", "sensor"]
    sensor: Text | None = None
    fault_id: Text

    @model_validator(mode="after")
    def _sensor_matches_kind(self) -> Self:
        if self.kind == "sensor" and self.sensor is None:
            raise ValueError("sensor: found null with kind 'sensor', expected the faulty sensor's name")
        if self.kind == "machine" and self.sensor is not None:
            raise ValueError(f"sensor: found {self.sensor!r} with kind 'machine', expected null")
        return self


class Maintenance(Message):
    machine_id: Name
    from_: Epoch = Field(alias="from")
    until: Epoch
    reason: Annotated[str, StringConstraints(max_length=MAX_REASON)]
    by: Annotated[str, StringConstraints(max_length=MAX_TEXT)]

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.until <= self.from_:
            raise ValueError(f"until: found {self.until} (not after from={self.from_}), expected until > from")
        return self


def alert_id(machine_id: str, window_end: float, sensor: str | None = None) -> str:
    """``MACHINE-`` + ``window_end`` in integer milliseconds: the same alert always gets the same id. A sensor alert
    (``kind: sensor``, a project extension: docs/mqtt-contract.md) is ``MACHINE-SENSOR-`` + milliseconds.

    >>> alert_id("pump-007", 1795406400.0), alert_id("pump-007", 1795406400.0, "temperature")
    ('pump-007-1795406400000', 'pump-007-temperature-1795406400000')
    """
    if sensor is not None:
        return f"{machine_id}-{sensor}-{round(window_end * 1000)}"
    return f"{machine_id}-{round(window_end * 1000)}"


class Alert(Message):
    alert_id: Text
    machine_id: Name
    event: Literal["raised", "cleared"]
    ts: Epoch
    window_start: Epoch
    window_end: Epoch
    score: float
    threshold: float
    severity: Text
    contributions: Shares
    model: ModelRef
    instance: Name
    # project extension (docs/mqtt-contract.md): a broken sensor is not a broken machine. Absent: a machine alert.
    kind: Literal["machine", "sensor"] = "machine"
    sensor: Name | None = None
    problem: Literal["missing", "stuck", "spikes", "drift"] | None = None

    def encode(self) -> bytes:
        """A machine alert as the contract has it; a sensor alert with its three extra fields."""
        extra = None if self.kind == "sensor" else {"kind", "sensor", "problem"}
        return self.model_dump_json(by_alias=True, exclude=extra).encode()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.kind == "sensor") != (self.sensor is not None and self.problem is not None):
            raise ValueError(f"kind: found {self.kind!r} with sensor={self.sensor!r} and problem={self.problem!r}, "
                             "expected both for a sensor alert and neither for a machine alert")
        expected = alert_id(self.machine_id, self.window_end, self.sensor)
        if self.alert_id != expected:
            raise ValueError(f"alert_id: found {self.alert_id!r}, expected {expected!r} (MACHINE-window_end in ms)")
        if self.window_start > self.window_end:
            raise ValueError(f"window_start: found {self.window_start} after window_end={self.window_end}, "
                             "expected window_start <= window_end")
        total = math.fsum(self.contributions.values())
        if not self.contributions or abs(total - 1.0) > 1e-3:
            raise ValueError(f"contributions: found a sum of {total:.6g}, expected shares that sum to 1")
        return self


class State(Message):
    machine_id: Name
    state: Literal["warming_up", "normal", "alert", "stale", "maintenance"]
    since: Epoch
    alert_id: Text | None = None
    score: float | None = None
    threshold: float | None = None
    model: ModelRef | None = None
    instance: Name
    ts: Epoch

    @model_validator(mode="after")
    def _alert_has_id(self) -> Self:
        if self.state == "alert" and self.alert_id is None:
            raise ValueError("alert_id: found null with state 'alert', expected the open alert's id")
        return self


class Status(Message):
    state: Literal["online", "offline"]
    service: Name
    instance: Name
    version: Text
    model: ModelRef | None = None
    started_at: Epoch

    def offline(self) -> Status:
        """The same status with ``state`` offline (the Last Will, and what a clean exit publishes)."""
        return self.model_copy(update={"state": "offline"})


class Rejected(Message):
    ts: Epoch
    topic: Annotated[str, StringConstraints(max_length=MAX_TOPIC)]
    reason: Text
    detail: Annotated[str, StringConstraints(max_length=MAX_DETAIL)]
    payload_excerpt: str

    @model_validator(mode="after")
    def _excerpt_size(self) -> Self:
        size = len(self.payload_excerpt.encode())
        if size > EXCERPT_BYTES:
            raise ValueError(f"payload_excerpt: found {size} bytes, expected at most {EXCERPT_BYTES}")
        return self

    @classmethod
    def build(cls, topic: str, reason: str, detail: str, payload: bytes, ts: float | None = None) -> Rejected:
        """A dead letter; the excerpt is the payload's first bytes, cut to at most 200 bytes of UTF-8; the topic
        and the detail are cut to their caps (whatever was received, a dead letter can always be built)."""
        text = payload[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        while len(text.encode()) > EXCERPT_BYTES:
            text = text[:-1]
        return cls(ts=time.time() if ts is None else ts, topic=topic[:MAX_TOPIC], reason=reason[:MAX_TEXT],
                   detail=detail[:MAX_DETAIL], payload_excerpt=text)


M = TypeVar("M", bound=Message)


def _parse(cls: type[M], payload: Payload, what: str, machine_id: str | None = None) -> M:
    obj = decode_object(payload, what)
    check_schema(obj, what)
    if "machine_id" in obj:
        check_machine_id(obj["machine_id"], what, machine_id)
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        raise_validation(exc, what)


def parse_truth(payload: Payload, machine_id: str | None = None) -> TruthEvent:
    return _parse(TruthEvent, payload, "truth", machine_id)


def parse_maintenance(payload: Payload, machine_id: str | None = None) -> Maintenance | None:
    """``None`` for an empty payload (an empty retained message clears the window)."""
    if isinstance(payload, bytes | bytearray | memoryview | str) and len(payload) == 0:
        return None
    return _parse(Maintenance, payload, "maintenance", machine_id)


def parse_alert(payload: Payload, machine_id: str | None = None) -> Alert:
    return _parse(Alert, payload, "alert", machine_id)


def parse_state(payload: Payload, machine_id: str | None = None) -> State:
    return _parse(State, payload, "state", machine_id)


def parse_status(payload: Payload, service: str | None = None, instance: str | None = None) -> Status:
    """``service``/``instance`` are the topic's (checked when given)."""
    status = _parse(Status, payload, "status")
    for name, found, expected in (("service", status.service, service), ("instance", status.instance, instance)):
        if expected is not None and found != expected:
            raise TopicMismatchError(f"status: {name}: found {found!r}, expected {expected!r} (the topic's)")
    return status


def parse_rejected(payload: Payload) -> Rejected:
    return _parse(Rejected, payload, "rejected")


def model_dict(model: Message) -> dict[str, Any]:
    """The payload as a plain dict with the contract's field names."""
    return model.model_dump(by_alias=True)

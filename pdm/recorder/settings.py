"""The recorder's one settings object (``python -m pdm record``), modelled on the daemon's.

Precedence: command-line flag > ``PDM_RECORD_<NAME>`` environment variable > ``PDM_<NAME>`` for the connection
settings shared with the daemon (broker, TLS files, username, password, MQTT version, prefix) > config file (TOML,
``--config`` or ``PDM_CONFIG``: a ``[record]`` table; the connection settings of a ``[serve]`` table are used too)
> default. Recorder-only settings such as the client id never read the daemon's ``PDM_<NAME>``: a recorder and a
daemon must never share a client id. The MQTT password comes only from ``PDM_MQTT_PASSWORD`` (or
``PDM_RECORD_MQTT_PASSWORD``) or ``--password-file``.

>>> s = RecordSettings(root="/tmp/rec", shard="1/2", sensors="temperature, pressure", retention_bytes="2GiB",
...                    max_clock_skew="6h")
>>> s.effective_client_id, s.effective_instance, s.sensors, s.retention_bytes, s.max_clock_skew
('pdm-recorder-1of2', 'recorder-1', ('temperature', 'pressure'), 2147483648, 21600.0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pdm.contract import SENSORS
from pdm.errors import PdmError
from pdm.mqtt import loading
from pdm.mqtt.settings import CONNECTION_KEYS, ConnectionSettings, duration_field
from pdm.recorder.schema import TABLES

ENV_PREFIX = "PDM_RECORD_"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(value: Any) -> Any:
    """``"2GiB"``, ``"500M"``, ``"1.5g"`` or a number of bytes -> bytes (powers of 1024).

    >>> parse_size("2GiB"), parse_size("500M"), parse_size(0)
    (2147483648, 524288000, 0)
    """
    if not isinstance(value, str):
        return value
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"found {value!r}, expected a size such as 500MiB, 2GiB or a number of bytes")
    scale = 1024 ** " kmgt".index(match.group(2).lower() or " ")
    return round(float(match.group(1)) * scale)


def _names(value: Any) -> Any:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


class RecordSettings(ConnectionSettings):
    """Settings of ``python -m pdm record``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)
    instance_base: ClassVar[str] = "recorder"
    config_table: ClassVar[str] = "record"
    shared_env_prefix: ClassVar[str | None] = "PDM_"
    shared_table: ClassVar[str | None] = "serve"

    root: Path = Field(description="directory of the recorded tables (created if missing)")
    client_id: str = Field("pdm-recorder", description="client id base; the shard is appended "
                           "(pdm-recorder-0of1): one persistent session per recorder")
    qos: int = Field(1, ge=0, le=1, description="QoS of the subscriptions (scores are QoS 0 whatever this is)")
    instance: str | None = Field(None, description="instance name in the status topic and segment names "
                                 "(default recorder-<shard index>)")
    receive_maximum: int = Field(20_000, ge=1, le=65_535, description="QoS 1 messages the broker may send before "
                                 "the recorder acknowledges; acknowledged once fsynced")
    max_payload_bytes: int = Field(1_048_576, ge=64, description="larger payloads are rejected (counted)")
    queue_size: int = Field(50_000, ge=1, description="bounded queue between the network thread and the writer")
    sensors: Annotated[tuple[str, ...], NoDecode] = Field(SENSORS, description="telemetry sensors: one column "
                                                          "each; a message without one of them is rejected")
    tables: Annotated[tuple[str, ...], NoDecode] = Field(TABLES, description="tables to record (comma-separated): "
                                                         + ",".join(TABLES))
    flush_interval: float = Field(1.0, gt=0, le=60, description="seconds between fsyncs of the write-ahead "
                                  "segments: at most this much is lost in a crash")
    roll_interval: float = Field(3600.0, gt=0, description="seconds after which a segment becomes Parquet")
    roll_bytes: Annotated[int, NoDecode] = Field(128 * 1024**2, ge=1024, description="segment size that makes it "
                                                 "Parquet earlier (e.g. 128MiB)")
    retention_days: int = Field(90, ge=0, description="remove date partitions older than this many days "
                                "(0: no age limit)")
    retention_bytes: Annotated[int, NoDecode] = Field(0, ge=0, description="cap on the root's size, oldest dates "
                                                      "removed first (e.g. 50GiB; 0: no cap)")
    compression: str = Field("zstd", description="Parquet compression (zstd, snappy, gzip, none)")
    max_clock_skew: float = Field(86_400.0, ge=0, description="a row whose time (ts; a state's since, and its ts) is "
                                  "further than this from the receive time is rejected (clock_skew), not recorded: "
                                  "e.g. 1d, 6h; 0: no check (replaying old data, fast simulations)")
    drain_timeout: float = Field(30.0, ge=0, description="seconds to record what is queued and compact on stop")
    stats_interval: float = Field(60.0, gt=0, description="seconds between counter summaries in the log")

    @field_validator("sensors", "tables", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _names(value)

    @field_validator("roll_bytes", "retention_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value)

    @field_validator("max_clock_skew", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @property
    def horizon_days(self) -> int | None:
        """Days after today that recorded dates can reach under the clock-skew rule (``None``: no rule)."""
        return None if not self.max_clock_skew else math.ceil(self.max_clock_skew / 86_400.0) + 1

    @field_validator("tables")
    @classmethod
    def _check_tables(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in TABLES]
        if unknown or not value:
            raise ValueError(f"found {list(value)}, expected names from {list(TABLES)}")
        return value

    @field_validator("sensors")
    @classmethod
    def _check_sensors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from pdm.recorder.schema import telemetry_schema

        try:
            telemetry_schema(value)
        except PdmError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("compression")
    @classmethod
    def _check_compression(cls, value: str) -> str:
        if value.lower() not in ("zstd", "snappy", "gzip", "none", "lz4", "brotli"):
            raise ValueError(f"found {value!r}, expected zstd, snappy, gzip, lz4, brotli or none")
        return value.lower()


def for_serve(serve: ConnectionSettings, root: Path, *, model_sensors: Sequence[str] = (),
              **overrides: Any) -> RecordSettings:
    """Settings for a recorder started inside ``serve`` (``--record-dir``): the daemon's connection and shard, the
    recorder's own client id and instance. The clock-skew rule is the daemon's ``max_clock_skew`` when it has one,
    else off (0): the daemon replays and scores data of any age today. The sensors recorded are the contract's and
    every other one the daemon's models read (``model_sensors``: a reference such as ``ambient``), so that
    ``pdm retrain --recorder`` finds what the models need.

    >>> from pdm.daemon.settings import ServeSettings
    >>> for_serve(ServeSettings(models_dir="/m"), Path("/r"), model_sensors=["ambient", "temperature"]).sensors
    ('temperature', 'vibration', 'pressure', 'ambient')
    """
    shared: dict[str, Any] = {name: getattr(serve, name) for name in CONNECTION_KEYS if name != "mqtt_password"}
    if model_sensors:
        shared["sensors"] = tuple(dict.fromkeys([*SENSORS, *model_sensors]))
    shared["max_clock_skew"] = getattr(serve, "max_clock_skew", None) or 0.0
    if serve.mqtt_password is not None:
        shared["mqtt_password"] = serve.mqtt_password
    return RecordSettings(root=root, shard=serve.shard, **{**shared, **overrides})


# flags > environment > config file > defaults; `pdm.mqtt.loading` for the rules
load_settings = partial(loading.load_settings, RecordSettings)
add_arguments = partial(loading.add_arguments, RecordSettings)
from_args = partial(loading.from_args, RecordSettings)

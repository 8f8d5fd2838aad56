"""The daemon's one settings object: defaults, descriptions and validation in one place.

Precedence: command-line flag > ``PDM_<NAME>`` environment variable > config file (TOML, ``--config`` or
``PDM_CONFIG``; a ``[serve]`` table or top-level keys) > default. ``python -m pdm serve --help`` is generated from
this schema. The connection settings (broker, TLS, credentials, session, shard) are `pdm.mqtt.ConnectionSettings`'.
The MQTT password comes only from ``PDM_MQTT_PASSWORD`` or ``--password-file``; it is a ``SecretStr`` and shows as
``**********`` in logs.

>>> s = ServeSettings(shard="1/4", default_model="pump")
>>> s.shard_index, s.shard_count, s.effective_client_id, s.effective_instance
(1, 4, 'pdm-scorer-1of4', 'scorer-1')
>>> ServeSettings(routes="pump=pumps, motor=motors").routes
{'pump': 'pumps', 'motor': 'motors'}
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pdm.mqtt import loading
from pdm.mqtt.settings import ConnectionSettings, SettingsError, duration_field

__all__ = ["ServeSettings", "SettingsError", "add_arguments", "from_args", "load_settings"]  # SettingsError: re-export
ENV_PREFIX = "PDM_"


class ServeSettings(ConnectionSettings):
    """Settings of ``python -m pdm serve``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)
    instance_base: ClassVar[str] = "scorer"
    config_table: ClassVar[str] = "serve"

    client_id: str = Field("pdm-scorer", description="client id base; the shard is appended (pdm-scorer-0of1), so "
                           "two shards never share a persistent session")
    instance: str | None = Field(None, description="instance name in status, states and alerts (default "
                                 "scorer-<shard index>)")
    qos: int = Field(1, ge=0, le=1, description="QoS of the telemetry subscription and of alerts and states")
    models_dir: Path = Field(Path("models"), description="directory holding one model name directory per model")
    default_model: str | None = Field(None, description="model for machines whose machine_type has no route "
                                      "(default: the only model under --models-dir)")
    routes: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, description="machine_type to model "
                                                        "name, e.g. pump=pump,compressor=compressor")
    stride: int = Field(1, ge=1, description="score every stride-th reading's window (1: every reading); the alarm "
                        "rule's counts are divided by it, so its spans stay the same in time")
    stale_timeout: float = Field(300.0, gt=0, description="seconds without data before a machine is 'stale'")
    heartbeat: float = Field(30.0, gt=0, le=60, description="seconds between retained state re-publications")
    max_batch_windows: int = Field(4096, ge=1, description="windows per micro-batch at most")
    max_payload_bytes: int = Field(1_048_576, ge=64, description="larger telemetry payloads are rejected")
    metrics_host: str = Field("127.0.0.1", description="address of the metrics and health server (0.0.0.0: all)")
    metrics_port: int = Field(9108, ge=0, le=65_535, description="port of /metrics and /healthz (0: disabled)")
    stall_timeout: float = Field(60.0, gt=0, description="/healthz fails when scoring made no progress for this "
                                 "many seconds")
    publish_scores: bool = Field(False, description="publish every scored window on PREFIX/scores/MACHINE (QoS 0)")
    engine: Literal["auto", "onnx", "keras"] = Field(
        "auto", description="scoring engine: auto (ONNX Runtime when the model has a valid model.onnx, else Keras), "
        "onnx (no TensorFlow at all), keras (the compiled Keras path)")
    warm_up: bool = Field(True, description="compile the scoring path for every batch size before connecting (and "
                          "a hot-reloaded version's before it is swapped in)")
    reload_interval: float = Field(10.0, ge=0, description="seconds between checks of each model's 'current' for a "
                                   "new version, hot-reloaded in the background (0: never)")
    drain_timeout: float = Field(30.0, ge=0, description="seconds to drain and flush on SIGTERM")
    drift_window: float = Field(86_400.0, gt=0, description="seconds of each machine's reading clock its drift "
                                "and data quality are computed over (24 h: the simulator's duty cycles and daily "
                                "ambient cycle make shorter spans drift on normal data; docs/daemon.md)")
    drift_moderate: float = Field(0.5, gt=0, description="drift PSI from which a machine's drift is 'moderate' "
                                  "(measured: normal machines sit at 0.19-0.48 over a day, above the textbook 0.1, "
                                  "because consecutive windows are not independent; docs/daemon.md)")
    drift_high: float = Field(1.0, gt=0, description="drift PSI from which a machine's drift is 'drifted' (verdict "
                              "model_stale without an alert); set it above your fleet's normal 90th percentile")
    record_dir: Path | None = Field(None, description="also record telemetry, scores, alerts, states, maintenance "
                                    "and truth as Parquet under this directory (a recorder with its own MQTT "
                                    "session, started and stopped with the daemon; see docs/recorder.md)")
    # ---- untrusted input (issue 14; docs/daemon.md, "Untrusted input")
    max_clock_skew: float = Field(86_400.0, ge=0, description="a telemetry message with a reading further than this "
                                  "from the receive time is rejected (clock_skew), e.g. 1d, 6h; it is also the "
                                  "recorder's rule with --record-dir; 0: no check (replaying old data)")
    model_range: float = Field(1000.0, ge=0, description="a telemetry message with a value more than this many "
                               "robust scales (the model's scaling of that machine and sensor) from its training "
                               "median is rejected (beyond_model_range); 0: no check")
    max_machines: int = Field(25_000, ge=1, description="machines tracked at most; a message for a new machine "
                              "beyond it is rejected (too_many_machines) until stale ones are evicted")
    allow_machines: str | None = Field(None, description="only these machine ids are tracked: comma-separated "
                                       "glob patterns (pump-*,motor-00?); others are rejected (unknown_machine)")
    allow_machines_file: Path | None = Field(None, description="file of allowed machine ids or glob patterns, one "
                                             "per line (# comments); with --allow-machines, either allows")
    evict_after: float = Field(86_400.0, ge=0, description="a machine without a message for this long (wall "
                               "clock, e.g. 1d) is forgotten, unless an alert of it is open; 0: never")
    max_maintenance: float = Field(30 * 86_400.0, gt=0, description="a maintenance window longer than this (e.g. "
                                   "30d) is rejected (maintenance_too_long)")
    state_dir: Path | None = Field(None, description="checkpoint every machine's stream, alarm and open alert here "
                                   "and acknowledge telemetry only once its checkpoint is written: a killed daemon "
                                   "resumes where it stopped, every reading scored once (docs/daemon.md)")

    @model_validator(mode="after")
    def _drift_levels(self) -> Self:
        if self.drift_high <= self.drift_moderate:
            raise ValueError(f"--drift-high: found {self.drift_high}, expected more than --drift-moderate "
                             f"({self.drift_moderate})")
        return self

    @field_validator("max_clock_skew", "evict_after", "max_maintenance", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_field(value)

    @field_validator("routes", mode="before")
    @classmethod
    def _parse_routes(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        routes: dict[str, str] = {}
        for item in filter(None, (i.strip() for i in value.split(","))):
            key, sep, name = item.partition("=")
            if not sep or not key.strip() or not name.strip():
                raise ValueError(f"found {item!r}, expected TYPE=MODEL pairs separated by commas")
            routes[key.strip()] = name.strip()
        return routes


# flags > environment > config file > defaults; `pdm.mqtt.loading` for the rules
load_settings = partial(loading.load_settings, ServeSettings)
add_arguments = partial(loading.add_arguments, ServeSettings)
from_args = partial(loading.from_args, ServeSettings)

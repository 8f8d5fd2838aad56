"""The daemon's one settings object: defaults, descriptions and validation in one place.

Precedence: command-line flag > ``PDM_<NAME>`` environment variable > config file (TOML, ``--config`` or
``PDM_CONFIG``) > default. ``python -m pdm serve --help`` is generated from this schema. The MQTT password comes only
from ``PDM_MQTT_PASSWORD`` or ``--password-file``; it is a ``SecretStr`` and shows as ``**********`` in logs.

>>> s = ServeSettings(shard="1/4", default_model="pump")
>>> s.shard_index, s.shard_count, s.effective_client_id, s.effective_instance
(1, 4, 'pdm-scorer-1of4', 'scorer-1')
>>> ServeSettings(routes="pump=pumps, motor=motors").routes
{'pump': 'pumps', 'motor': 'motors'}
"""

from __future__ import annotations

import argparse
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from pdm.contract import Topics, is_valid_name
from pdm.errors import PdmError

ENV_PREFIX = "PDM_"
NOT_A_FLAG = frozenset({"mqtt_password"})  # secrets: environment or file only
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("pdm_serve_config_file", default=None)


class SettingsError(PdmError, ValueError):
    """Invalid daemon settings; the message names the setting, what was found and what was expected."""


class ServeSettings(BaseSettings):
    """Settings of ``python -m pdm serve``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    broker: str = Field("mqtt://127.0.0.1:1883", description="broker URL: mqtt://HOST:PORT, or mqtts://HOST:PORT "
                        "for TLS")
    ca_file: Path | None = Field(None, description="TLS: CA certificate file (default: the system's CAs)")
    cert_file: Path | None = Field(None, description="TLS: client certificate file (with --key-file)")
    key_file: Path | None = Field(None, description="TLS: client private key file")
    username: str | None = Field(None, description="MQTT user name")
    mqtt_password: SecretStr | None = Field(None, description="MQTT password: only from the environment variable "
                                            "PDM_MQTT_PASSWORD (or --password-file)")
    password_file: Path | None = Field(None, description="file holding the MQTT password (first line)")
    mqtt_version: int = Field(5, description="MQTT protocol version (5, or 3 for 3.1.1)")
    prefix: str = Field("pdm/v1", description="topic prefix of the MQTT contract")
    qos: int = Field(1, ge=0, le=1, description="QoS of the telemetry subscription and of alerts and states")
    client_id: str = Field("pdm-scorer", description="client id base; the shard is appended (pdm-scorer-0of1), so "
                           "two shards never share a persistent session")
    instance: str | None = Field(None, description="instance name in status, states and alerts (default "
                                 "scorer-<shard index>)")
    session_expiry: int = Field(86_400, ge=0, description="seconds the broker keeps the session (and queues "
                                "telemetry) while the daemon is down")
    keepalive: int = Field(30, ge=5, description="MQTT keepalive in seconds")
    receive_maximum: int = Field(1000, ge=1, le=65_535, description="QoS 1 messages the broker may send before the "
                                 "daemon acknowledges; messages are acknowledged once scored (back-pressure)")
    models_dir: Path = Field(Path("models"), description="directory holding one model name directory per model")
    default_model: str | None = Field(None, description="model for machines whose machine_type has no route "
                                      "(default: the only model under --models-dir)")
    routes: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, description="machine_type to model "
                                                        "name, e.g. pump=pump,compressor=compressor")
    shard: str = Field("0/1", description="shard i/n: this daemon owns the machines with crc32(id) % n == i")
    stride: int = Field(1, ge=1, description="score every stride-th reading's window (1: every reading)")
    stale_timeout: float = Field(300.0, gt=0, description="seconds without data before a machine is 'stale'")
    heartbeat: float = Field(30.0, gt=0, le=60, description="seconds between retained state re-publications")
    queue_size: int = Field(20_000, ge=1, description="bounded queue between the network thread and scoring "
                            "(messages)")
    max_batch_windows: int = Field(4096, ge=1, description="windows per micro-batch at most")
    max_payload_bytes: int = Field(1_048_576, ge=64, description="larger telemetry payloads are rejected")
    metrics_host: str = Field("127.0.0.1", description="address of the metrics and health server (0.0.0.0: all)")
    metrics_port: int = Field(9108, ge=0, le=65_535, description="port of /metrics and /healthz (0: disabled)")
    stall_timeout: float = Field(60.0, gt=0, description="/healthz fails when scoring made no progress for this "
                                 "many seconds")
    publish_scores: bool = Field(False, description="publish every scored window on PREFIX/scores/MACHINE (QoS 0)")
    warm_up: bool = Field(True, description="compile the scoring path for every batch size before connecting")
    drain_timeout: float = Field(30.0, ge=0, description="seconds to drain and flush on SIGTERM")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlFile(settings_cls)

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

    @field_validator("mqtt_version")
    @classmethod
    def _check_version(cls, value: int) -> int:
        if value not in (3, 5):
            raise ValueError(f"found {value}, expected 5 (MQTT 5) or 3 (MQTT 3.1.1)")
        return value

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: str) -> str:
        i, sep, n = value.partition("/")
        if not sep or not i.isdigit() or not n.isdigit() or int(n) < 1 or int(i) >= int(n):
            raise ValueError(f"found {value!r}, expected i/n with 0 <= i < n (e.g. 0/1, 2/4)")
        return f"{int(i)}/{int(n)}"

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        Topics(value)  # raises TopicError (a ValueError) with the rule
        return value

    @model_validator(mode="after")
    def _check(self) -> ServeSettings:
        if not is_valid_name(self.effective_instance):
            raise ValueError(f"instance: found {self.effective_instance!r}, expected 1-64 characters of "
                             "[A-Za-z0-9_.-]")
        if self.mqtt_password is not None and self.password_file is not None:
            raise ValueError("found both PDM_MQTT_PASSWORD and password_file, expected one")
        if self.receive_maximum > self.queue_size:
            raise ValueError(f"receive_maximum: found {self.receive_maximum} > queue_size={self.queue_size}, "
                             "expected receive_maximum <= queue_size (unacknowledged messages fit in the queue)")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("found only one of cert_file and key_file, expected both or neither")
        return self

    @property
    def shard_index(self) -> int:
        return int(self.shard.split("/")[0])

    @property
    def shard_count(self) -> int:
        return int(self.shard.split("/")[1])

    @property
    def effective_client_id(self) -> str:
        return f"{self.client_id}-{self.shard_index}of{self.shard_count}"

    @property
    def effective_instance(self) -> str:
        return self.instance or f"scorer-{self.shard_index}"

    def password(self) -> str | None:
        """The MQTT password (environment, or the first line of ``password_file``)."""
        if self.password_file is not None:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
            return lines[0] if lines else ""
        return self.mqtt_password.get_secret_value() if self.mqtt_password is not None else None


class _TomlFile(PydanticBaseSettingsSource):
    """The config file (lowest priority before defaults); a ``[serve]`` table or top-level keys."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        path = _CONFIG_FILE.get()
        if path is None:
            return {}
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"--config: cannot read {path} ({exc.strerror}), expected a readable TOML file") \
                from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"--config: {path} is not valid TOML ({exc})") from None
        table = data.get("serve", data)
        if not isinstance(table, dict):
            raise SettingsError(f"--config: {path}: [serve] is not a table")
        values = {str(k).replace("-", "_"): v for k, v in table.items()}
        if "mqtt_password" in values:
            raise SettingsError(f"--config: {path} holds mqtt_password, expected the password only in "
                                "PDM_MQTT_PASSWORD or a --password-file")
        return values


def load_settings(cli: dict[str, Any] | None = None, config_file: Path | None = None) -> ServeSettings:
    """Settings from flags (``cli``: only the flags given), the environment, ``config_file`` and defaults."""
    token = _CONFIG_FILE.set(config_file)
    try:
        return ServeSettings(**(cli or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        flag = f"--{name.replace('_', '-')} / {ENV_PREFIX}{name.upper()}" if err["loc"] else name
        msg = err["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{flag}: {msg} (found {err.get('input')!r})") from None
    finally:
        _CONFIG_FILE.reset(token)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting (the password excepted), help text from the schema, defaults shown."""
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                        help=f"TOML config file (keys as the flags, with _ or -; optional [serve] table); "
                        f"env {ENV_PREFIX}CONFIG")
    for name, field in ServeSettings.model_fields.items():
        if name in NOT_A_FLAG:
            continue
        flag = "--" + name.replace("_", "-")
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        text = f"{field.description} [default: {default}; env {ENV_PREFIX}{name.upper()}]"
        text = text.replace("%", "%%")  # argparse formats help with %
        if field.annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(flag, default=argparse.SUPPRESS, metavar=name.upper(), help=text, dest=name)


def from_args(args: argparse.Namespace) -> ServeSettings:
    """Settings from parsed flags: only flags given on the command line override the other sources."""
    import os

    given = {name: getattr(args, name) for name in ServeSettings.model_fields if hasattr(args, name)}
    config = getattr(args, "config", None) or os.environ.get(f"{ENV_PREFIX}CONFIG")
    return load_settings(given, Path(config) if config else None)

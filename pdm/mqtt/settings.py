"""The MQTT connection settings every long-running client shares (the daemon's, the recorder's), and where they come
from besides flags.

A subclass sets its environment prefix (``model_config = SettingsConfigDict(env_prefix="PDM_")``), its config-file
table (``config_table``), the base of its instance name (``instance_base``) and its own ``client_id`` default; it
inherits the fields below, their validators and the derived properties. Sources, highest first: the values given
(flags), ``<env_prefix><NAME>``, then, when ``shared_env_prefix`` is set, ``<shared_env_prefix><NAME>`` for the
`CONNECTION_KEYS` only, then the TOML config file (`TomlFile`), then defaults. The password is a ``SecretStr`` that
comes only from the environment or ``password_file``, never from a flag or the config file, and is never shown (the
settings' ``repr`` prints ``**********``). A broker URL with credentials (``mqtt://user:pass@host``) is refused, its
password shown as ``***`` in the error: the user goes in ``username``, the password in the environment.

>>> class Probe(ConnectionSettings):
...     instance_base: ClassVar[str] = "probe"
>>> s = Probe(shard="2/4")
>>> s.shard_index, s.shard_count, s.effective_client_id, s.effective_instance
(2, 4, 'pdm-2of4', 'probe-2')
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from pdm.contract import NAME_RULE, Topics, is_valid_name
from pdm.contract.timespec import parse_duration
from pdm.contract.topics import parse_broker_url
from pdm.errors import PdmError

CONFIG_ENV = "PDM_CONFIG"
NOT_A_FLAG = frozenset({"mqtt_password"})  # secrets: environment or file only
CONNECTION_KEYS = frozenset({"broker", "ca_file", "cert_file", "key_file", "username", "mqtt_password",
                             "password_file", "mqtt_version", "prefix"})
CONFIG_FILE: ContextVar[Path | None] = ContextVar("pdm_config_file", default=None)


def duration_field(value: Any) -> Any:
    """A pydantic ``mode="before"`` validator's body for a duration setting: ``"6h"``, ``"1d12h"``, ``"90"`` ->
    seconds (`pdm.contract.timespec.parse_duration`); numbers pass through. A ``ValueError`` says what was found
    and expected."""
    if isinstance(value, str):
        try:
            return parse_duration(value, "duration")
        except PdmError as exc:
            raise ValueError(str(exc).removeprefix("duration: ")) from None
    return value


class SettingsError(PdmError, ValueError):
    """Invalid settings; the message names the setting (flag and environment variable), what was found and what
    was expected."""


class ConnectionSettings(BaseSettings):
    """Broker, credentials, TLS and persistent-session settings of one MQTT client process."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)
    instance_base: ClassVar[str] = "client"  # effective_instance: "<instance_base>-<shard index>"
    config_table: ClassVar[str] = "client"  # the config file's table of this program
    shared_env_prefix: ClassVar[str | None] = None  # also read CONNECTION_KEYS from this prefix ...
    shared_table: ClassVar[str | None] = None  # ... and from this table of the config file

    broker: str = Field("mqtt://127.0.0.1:1883", description="broker URL: mqtt://HOST:PORT, or mqtts://HOST:PORT "
                        "for TLS (no credentials in it: --username and PDM_MQTT_PASSWORD)")
    ca_file: Path | None = Field(None, description="TLS: CA certificate file (default: the system's CAs)")
    cert_file: Path | None = Field(None, description="TLS: client certificate file (with --key-file)")
    key_file: Path | None = Field(None, description="TLS: client private key file")
    username: str | None = Field(None, description="MQTT user name")
    mqtt_password: SecretStr | None = Field(None, description="MQTT password: only from the environment variable "
                                            "PDM_MQTT_PASSWORD (or --password-file)")
    password_file: Path | None = Field(None, description="file holding the MQTT password (first line)")
    mqtt_version: int = Field(5, description="MQTT protocol version (5, or 3 for 3.1.1)")
    prefix: str = Field("pdm/v1", description="topic prefix of the MQTT contract")
    client_id: str = Field("pdm", description="client id base; the shard is appended: one persistent session "
                           "per shard")
    instance: str | None = Field(None, description="instance name in the status topic (default: "
                                 "<service>-<shard index>)")
    shard: str = Field("0/1", description="shard i/n: this process owns the machines with crc32(id) % n == i")
    session_expiry: int = Field(86_400, ge=0, description="seconds the broker keeps the session (and queues "
                                "messages) while this process is down")
    keepalive: int = Field(30, ge=5, description="MQTT keepalive in seconds")
    receive_maximum: int = Field(1000, ge=1, le=65_535, description="QoS 1 messages the broker may send before "
                                 "they are acknowledged; acknowledged once processed (back-pressure)")
    queue_size: int = Field(20_000, ge=1, description="bounded queue between the network thread and the worker "
                            "(messages)")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = (SharedEnv(cls),) if cls.shared_env_prefix else ()
        return init_settings, env_settings, *shared, TomlFile(cls)

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        parse_broker_url(value)  # a ValueError that says what was found and expected; credentials are refused
        return value

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
    def _check_connection(self) -> Self:
        if not is_valid_name(self.effective_instance):
            raise ValueError(f"instance: found {self.effective_instance!r}, expected {NAME_RULE}")
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
        return self.instance or f"{self.instance_base}-{self.shard_index}"

    def password(self) -> str | None:
        """The MQTT password (environment, or the first line of ``password_file``)."""
        if self.password_file is not None:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
            return lines[0] if lines else ""
        return self.mqtt_password.get_secret_value() if self.mqtt_password is not None else None


class SharedEnv(PydanticBaseSettingsSource):
    """``<shared_env_prefix><NAME>`` for the `CONNECTION_KEYS` (the recorder reads the daemon's ``PDM_BROKER``...)."""

    def __init__(self, settings_cls: type[ConnectionSettings]) -> None:
        super().__init__(settings_cls)
        self._env = EnvSettingsSource(settings_cls, env_prefix=settings_cls.shared_env_prefix)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._env().items() if k in CONNECTION_KEYS}


class TomlFile(PydanticBaseSettingsSource):
    """The config file of `CONFIG_FILE` (lowest priority before defaults): the program's ``[config_table]``, or
    the top-level keys when there is neither it nor a ``[shared_table]``; under it, the `CONNECTION_KEYS` of the
    ``[shared_table]``. Keys may be spelled with ``-`` or ``_``; ``mqtt_password`` is refused."""

    def __init__(self, settings_cls: type[ConnectionSettings]) -> None:
        super().__init__(settings_cls)
        self.table, self.shared_table = settings_cls.config_table, settings_cls.shared_table

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        path = CONFIG_FILE.get()
        if path is None:
            return {}
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"--config: cannot read {path} ({exc.strerror}), expected a readable TOML file") \
                from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"--config: {path} is not valid TOML ({exc})") from None
        shared = data.get(self.shared_table, {}) if self.shared_table else {}
        own = data.get(self.table, {} if self.shared_table in data else data)
        for name, table in ((self.shared_table, shared), (self.table, own)):
            if not isinstance(table, dict):
                raise SettingsError(f"--config: {path}: [{name}] is not a table")
        values = {k: v for k, v in _keys(shared).items() if k in CONNECTION_KEYS}
        values.update(_keys(own))
        if "mqtt_password" in values:
            raise SettingsError(f"--config: {path} holds mqtt_password, expected the password only in "
                                "PDM_MQTT_PASSWORD or a --password-file")
        return values


def _keys(table: dict[str, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): v for k, v in table.items()}

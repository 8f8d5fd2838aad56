"""Settings of a `ConnectionSettings` subclass from flags, the environment, a config file and defaults; the flags
generated from its schema.

A validation error becomes one line naming the flag and the environment variable:

>>> from pdm.daemon.settings import ServeSettings
>>> try:
...     load_settings(ServeSettings, {"shard": "2/2"})
... except SettingsError as exc:
...     print(exc)
--shard / PDM_SHARD: found '2/2', expected i/n with 0 <= i < n (e.g. 0/1, 2/4)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from pdm.mqtt.settings import CONFIG_ENV, CONFIG_FILE, CONNECTION_KEYS, NOT_A_FLAG, ConnectionSettings, SettingsError

S = TypeVar("S", bound=ConnectionSettings)


def env_prefix(cls: type[ConnectionSettings]) -> str:
    return cls.model_config.get("env_prefix") or ""


def load_settings(cls: type[S], cli: dict[str, Any] | None = None, config_file: Path | None = None) -> S:
    """Settings from flags (``cli``: only the flags given), the environment, ``config_file`` and defaults."""
    token = CONFIG_FILE.set(config_file)
    try:
        return cls(**(cli or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        flag = f"--{name.replace('_', '-')} / {env_prefix(cls)}{name.upper()}" if err["loc"] else name
        msg = err["msg"].removeprefix("Value error, ")
        found = "nothing" if err["type"] == "missing" else repr(err.get("input"))
        raise SettingsError(f"{flag}: {msg}" + ("" if "found" in msg else f" (found {found})")) from None
    finally:
        CONFIG_FILE.reset(token)


def add_arguments(cls: type[ConnectionSettings], parser: argparse.ArgumentParser) -> None:
    """``--config`` and one flag per setting (the password excepted), help text from the schema, defaults and
    environment variables shown. Every default is ``SUPPRESS``: only the flags given override the other sources."""
    tables = (f"a [{cls.config_table}] table, and the connection keys of a [{cls.shared_table}] table"
              if cls.shared_table else f"optional [{cls.config_table}] table")
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                        help=f"TOML config file (keys as the flags, with _ or -; {tables}); env {CONFIG_ENV}")
    fields = sorted(cls.model_fields.items(), key=lambda item: not item[1].is_required())  # required ones first
    for name, field in fields:
        if name in NOT_A_FLAG:
            continue
        flag = "--" + name.replace("_", "-")
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        if isinstance(default, tuple):
            default = ",".join(default)
        env = env_prefix(cls) + name.upper()
        if cls.shared_env_prefix and name in CONNECTION_KEYS:
            env += f" or {cls.shared_env_prefix}{name.upper()}"
        shown = "required" if field.is_required() else f"default: {default}"
        text = f"{field.description} [{shown}; env {env}]".replace("%", "%%")  # argparse formats help with %
        if field.annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(flag, default=argparse.SUPPRESS, metavar=name.upper(), help=text, dest=name)


def from_args(cls: type[S], args: argparse.Namespace) -> S:
    """Settings from parsed flags: only flags given on the command line override the other sources."""
    given = {name: getattr(args, name) for name in cls.model_fields if hasattr(args, name)}
    config = getattr(args, "config", None) or os.environ.get(CONFIG_ENV)
    return load_settings(cls, given, Path(config) if config else None)

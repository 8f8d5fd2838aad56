"""Topics of the MQTT contract: building, parsing, and the static shard rule.

>>> t = Topics()
>>> t.telemetry("pump-007")
'pdm/v1/telemetry/pump-007'
>>> t.parse("pdm/v1/status/scorer/scorer-0")
TopicInfo(kind='status', machine_id=None, service='scorer', instance='scorer-0')
>>> t.machine_of("pdm/v1/telemetry/pump-007")
'pump-007'
>>> shard_of("pump-007", 4) == zlib.crc32(b"pump-007") % 4
True
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Literal, TypeGuard

from pdm.contract.errors import TopicError

DEFAULT_PREFIX = "pdm/v1"
NAME_PATTERN = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}"  # no leading '.': never '.', '..' or a hidden file name
NAME_RULE = "1-64 characters of [A-Za-z0-9_.-], not starting with '.'"
_NAME_RE = re.compile(NAME_PATTERN)

MachineTopicKind = Literal["telemetry", "truth", "maintenance", "alerts", "state", "scores"]
TopicKind = Literal["telemetry", "truth", "maintenance", "alerts", "state", "scores", "status", "rejected"]
MACHINE_KINDS: tuple[MachineTopicKind, ...] = ("telemetry", "truth", "maintenance", "alerts", "state", "scores")


def is_valid_name(name: object) -> TypeGuard[str]:
    """True when ``name`` is a valid MACHINE (also used for SERVICE and INSTANCE): ``[A-Za-z0-9_.-]{1,64}``, not
    starting with ``.``, so that it is safe as a file or directory name (never ``.``, ``..`` or a hidden name).

    >>> is_valid_name("pump-007"), is_valid_name("motor_1.a"), is_valid_name(".."), is_valid_name(".hidden")
    (True, True, False, False)
    """
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def check_name(name: object, what: str = "machine id") -> str:
    """Return ``name`` when valid, else raise :class:`TopicError` saying what was found and expected."""
    if is_valid_name(name):
        return name
    raise TopicError(f"{what}: found {_cut(name)}, expected {NAME_RULE}")


def _cut(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shard_of(machine_id: str, n_shards: int) -> int:
    """The shard (0..n-1) that owns ``machine_id``: ``zlib.crc32(machine_id.encode()) % n``."""
    if n_shards < 1:
        raise ValueError(f"found n_shards={n_shards}, expected >= 1")
    return zlib.crc32(machine_id.encode()) % n_shards


def owns(machine_id: str, shard: int, n_shards: int) -> bool:
    """True when shard ``shard`` of ``n_shards`` owns ``machine_id``."""
    return shard_of(machine_id, n_shards) == shard


@dataclass(frozen=True)
class TopicInfo:
    """A parsed topic: ``machine_id`` for per-machine topics, ``service``/``instance`` for status."""

    kind: TopicKind
    machine_id: str | None = None
    service: str | None = None
    instance: str | None = None


@dataclass(frozen=True)
class Topics:
    """Builds and parses the contract's topics under ``prefix`` (default ``pdm/v1``)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        p = self.prefix
        if not p or p.startswith("/") or p.endswith("/") or "+" in p or "#" in p or "//" in p:
            raise TopicError(f"topic prefix: found {p!r}, expected a non-empty topic without wildcards (+, #) or "
                             "leading, trailing or doubled '/' (e.g. 'pdm/v1')")

    def _machine_topic(self, kind: MachineTopicKind, machine_id: str) -> str:
        return f"{self.prefix}/{kind}/{check_name(machine_id)}"

    def telemetry(self, machine_id: str) -> str:
        return self._machine_topic("telemetry", machine_id)

    def truth(self, machine_id: str) -> str:
        return self._machine_topic("truth", machine_id)

    def maintenance(self, machine_id: str) -> str:
        return self._machine_topic("maintenance", machine_id)

    def alerts(self, machine_id: str) -> str:
        return self._machine_topic("alerts", machine_id)

    def state(self, machine_id: str) -> str:
        return self._machine_topic("state", machine_id)

    def scores(self, machine_id: str) -> str:
        return self._machine_topic("scores", machine_id)

    def status(self, service: str, instance: str) -> str:
        return f"{self.prefix}/status/{check_name(service, 'service')}/{check_name(instance, 'instance')}"

    def rejected(self) -> str:
        return f"{self.prefix}/rejected"

    def subscription(self, kind: MachineTopicKind) -> str:
        """The wildcard filter for one per-machine kind, e.g. ``pdm/v1/telemetry/+``."""
        if kind not in MACHINE_KINDS:
            raise TopicError(f"topic kind: found {kind!r}, expected one of {list(MACHINE_KINDS)}")
        return f"{self.prefix}/{kind}/+"

    def parse(self, topic: str) -> TopicInfo:
        """Split a topic into its kind and ids; :class:`TopicError` when it is not a contract topic."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            raise TopicError(f"topic: found {_cut(topic)}, expected it to start with {head!r}")
        parts = topic[len(head):].split("/")
        kind = parts[0]
        if kind in MACHINE_KINDS and len(parts) == 2:
            return TopicInfo(kind=kind, machine_id=check_name(parts[1]))
        if kind == "status" and len(parts) == 3:
            return TopicInfo(kind="status", service=check_name(parts[1], "service"),
                             instance=check_name(parts[2], "instance"))
        if kind == "rejected" and len(parts) == 1:
            return TopicInfo(kind="rejected")
        expected = [f"{self.prefix}/{k}/MACHINE" for k in MACHINE_KINDS]
        expected += [f"{self.prefix}/status/SERVICE/INSTANCE", f"{self.prefix}/rejected"]
        raise TopicError(f"topic: found {_cut(topic)}, expected one of {', '.join(expected)}")

    def machine_of(self, topic: str, kind: MachineTopicKind = "telemetry") -> str:
        """The MACHINE of a per-machine topic of ``kind`` (cheap: for dropping other shards' messages unparsed)."""
        head = f"{self.prefix}/{kind}/"
        if not topic.startswith(head):
            raise TopicError(f"topic: found {_cut(topic)}, expected {head}MACHINE")
        return check_name(topic[len(head):])


def redact_url(url: str) -> str:
    """``url`` with the password of its user part (if any) replaced by ``***``: what may be logged.

    >>> redact_url("mqtt://alice:s3cret@broker:1883")
    'mqtt://alice:***@broker:1883'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    user, at, host = netloc.rpartition("@")
    if not at:
        return url
    name = user.split(":", 1)[0]
    return f"{scheme}://{name}:***@{host}{slash}{path}" if ":" in user else url


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host:port`` (``mqtts://`` for TLS) -> (host, port, tls); a bad URL is a `ValueError` whose message
    says what was found and expected (with any password replaced by ``***``).

    Credentials in the URL (``mqtt://user:pass@host``) are refused, not ignored: a password in a URL ends up in
    logs, shell history and process lists. The user name goes in ``--username``, the password in the environment
    variable ``PDM_MQTT_PASSWORD`` or a ``--password-file``.

    >>> parse_broker_url("mqtts://broker.example.com")
    ('broker.example.com', 8883, True)
    >>> parse_broker_url("mqtt://127.0.0.1:1884")
    ('127.0.0.1', 1884, False)
    >>> parse_broker_url("mqtt://alice:s3cret@127.0.0.1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: found 'mqtt://alice:***@127.0.0.1' with credentials in the URL, expected ... --username ...
    """
    from urllib.parse import urlsplit

    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"found {shown!r}, expected mqtt://HOST:PORT or mqtts://HOST:PORT") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"found {shown!r} with credentials in the URL, expected mqtt://HOST:PORT without them: give "
                         "the user name with --username and the password in the environment variable "
                         "PDM_MQTT_PASSWORD (or --password-file)")
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"found {shown!r}, expected mqtt://HOST:PORT or mqtts://HOST:PORT")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"found {shown!r} with an invalid port, expected 1-65535") from None
    return parts.hostname, port, tls

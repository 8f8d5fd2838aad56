"""A throw-away MQTT broker on a free loopback port for the demo: mosquitto when installed, otherwise amqtt.

mosquitto gets the contract's broker configuration ("Sessions and scale": persistence on, queues large enough for a
fleet). amqtt is a pure-Python broker (MQTT 3.1.1 only, several times slower than mosquitto); with it the demo's
clients speak MQTT 3.1.1, which the daemon and the simulator support.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


class BrokerError(RuntimeError):
    """The broker could not be started; the message says why and how to fix it."""


def find_mosquitto() -> str | None:
    """The mosquitto binary on ``PATH`` or in a usual sbin directory, or ``None``."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_config(port: int, data_dir: Path, extra: Sequence[str] = ()) -> str:
    """mosquitto.conf for one loopback listener with the contract's session and queue settings, then the lines
    ``extra`` (e.g. a second listener with its TLS options: options apply to the listener line above them)."""
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data_dir}/",
        "persistence_file mosquitto.db",
        "autosave_interval 60",
        # mosquitto's default of 1000 queued messages per client is a tenth of a second of a 10,000-machine fleet
        "max_queued_messages 1000000",
        "max_queued_bytes 0",
        "max_inflight_messages 100",
        "set_tcp_nodelay true",
        f"log_dest file {data_dir}/mosquitto.log",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append("user root")  # as root, mosquitto otherwise drops to user 'mosquitto' and cannot write here
    return "\n".join([*lines, *extra]) + "\n"


def amqtt_config(port: int) -> str:
    """amqtt's configuration (JSON is YAML): one loopback listener, anonymous clients."""
    return json.dumps({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })


class LocalBroker:
    """One broker process on 127.0.0.1; ``kind`` is "mosquitto" or "amqtt" (chosen by ``start`` when "auto").

    ``stop()`` then ``start()`` restarts it on the same port with the same persistence (mosquitto). ``binary`` is the
    mosquitto binary (default: `find_mosquitto`); ``extra_config`` lines are appended to mosquitto's configuration.
    """

    def __init__(self, data_dir: Path, kind: str = "auto", port: int | None = None, binary: str | None = None,
                 extra_config: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.kind = kind
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.binary = binary
        self.extra_config = tuple(extra_config)
        self.config_path = data_dir / "mosquitto.conf"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def mqtt_version(self) -> int:
        """5 for mosquitto; amqtt speaks MQTT 3.1.1 only."""
        return 3 if self.kind == "amqtt" else 5

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.kind}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = self.binary or find_mosquitto()
        if self.kind == "auto":
            self.kind = "mosquitto" if binary else "amqtt"
        if self.kind == "mosquitto":
            if binary is None:
                raise BrokerError("found no mosquitto binary, expected one on PATH or in /usr/sbin "
                                  "(install the Debian package 'mosquitto', or use --broker-kind amqtt)")
            self.config_path.write_text(mosquitto_config(self.port, self.data_dir, self.extra_config),
                                        encoding="utf-8")
            return [binary, "-c", str(self.config_path)]
        if self.kind != "amqtt":
            raise BrokerError(f"found broker kind {self.kind!r}, expected 'auto', 'mosquitto' or 'amqtt'")
        if importlib.util.find_spec("amqtt") is None:
            raise BrokerError("found neither mosquitto nor the amqtt package, expected one of them "
                              "(apt install mosquitto, or pip install amqtt)")
        conf = self.data_dir / "amqtt.yaml"
        conf.write_text(amqtt_config(self.port), encoding="utf-8")
        return [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker (unless it runs) and wait until it accepts connections; ``BrokerError`` if it does not."""
        if self.running:
            return
        auto = self.kind == "auto"
        command = self._command()
        if self.kind == "amqtt":
            logger.warning("%susing amqtt, a pure-Python broker (MQTT 3.1.1, several times slower than mosquitto)",
                           "mosquitto is not installed: " if auto else "")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"{self.kind} exited with status {self.process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    logger.info("%s listening on %s", self.kind, self.url)
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"{self.kind} did not accept connections on {self.host}:{self.port} within {timeout:g} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (mosquitto saves its persistence file); SIGKILL if it hangs."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def log_tail(self, lines: int = 5) -> str:
        if not self.log_path.is_file():
            return ""
        return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

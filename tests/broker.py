"""Pytest plugin: a real Mosquitto broker on a free loopback port, with the contract's broker configuration.

Use the ``mosquitto`` fixture (tests marked ``@pytest.mark.broker``); inside a test that takes it::

        client.connect(mosquitto.host, mosquitto.port)
        mosquitto.stop()    # SIGTERM: mosquitto writes its persistence file
        mosquitto.start()   # same port, same persistence: persistent sessions and their queues survive

Without a mosquitto binary the test is skipped with the reason; with the environment variable ``CI`` set it fails.
The configuration follows the contract's "Sessions and scale": persistence on, queues large enough for a fleet.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_config(port: int, data_dir: Path) -> str:
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data_dir}/",
        "persistence_file mosquitto.db",
        "autosave_interval 60",
        # the contract's "Sessions and scale": mosquitto's default of 1000 queued messages per client is a tenth
        # of a second of a 10,000-machine fleet
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
        lines.append("user root")  # mosquitto started as root otherwise drops to user 'mosquitto': no tmp access
    return "\n".join(lines) + "\n"


class Broker:
    """One mosquitto process; ``stop()``/``start()`` restart it on the same port with the same persistence."""

    def __init__(self, binary: str, data_dir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.config_path = data_dir / "mosquitto.conf"
        self.log_path = data_dir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(broker_config(self.port, data_dir))

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self.process = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {err.strip()} "
                                   f"{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not accept connections on {self.host}:{self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file) and wait; SIGKILL if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def mosquitto_binary() -> str:
    """The mosquitto binary; skips the test when missing, fails it when the environment variable CI is set."""
    binary = find_mosquitto()
    if binary is None:
        msg = "mosquitto is not installed (apt-get install mosquitto, or `make broker`)"
        if os.environ.get("CI"):
            pytest.fail(f"{msg}: required in CI", pytrace=False)
        pytest.skip(msg)
    return binary


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker for one test, on a free 127.0.0.1 port; stopped and removed afterwards."""
    broker = Broker(mosquitto_binary(), tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

"""Pytest plugin: a real Mosquitto broker on a free loopback port, with the contract's broker configuration.

Use the ``mosquitto`` fixture (tests marked ``@pytest.mark.broker``); inside a test that takes it::

        client.connect(mosquitto.host, mosquitto.port)
        mosquitto.stop()    # SIGTERM: mosquitto writes its persistence file
        mosquitto.start()   # same port, same persistence: persistent sessions and their queues survive

Without a mosquitto binary the test is skipped with the reason; with the environment variable ``CI`` set it fails.
The broker process and its configuration are the demo's (`pdm.demo.broker`): the contract's "Sessions and scale",
persistence on, queues large enough for a fleet.

``mosquitto_tls``: the same broker with a second, TLS-only listener (``tls_port``, ``tls_url``) whose server
certificate is signed by a CA made for the test with ``openssl`` (``tls.ca``); skipped when openssl is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pdm.demo.broker import LocalBroker, find_mosquitto, free_port

__all__ = ["Broker", "TlsFiles", "find_mosquitto", "free_port", "make_tls_files", "mosquitto_binary"]


@dataclass(frozen=True)
class TlsFiles:
    """A test CA (``ca``) and a server certificate and key it signed, valid for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Generate a CA and a server certificate with the ``openssl`` command (skips the test when it is missing)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: the TLS test generates its CA and server certificate with it")
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pdm test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", ext.name],
    ]
    for cmd in steps:
        out = subprocess.run(cmd, cwd=directory, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed: {out.stderr.strip()}")
    return TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")


class Broker(LocalBroker):
    """One mosquitto process (`pdm.demo.broker.LocalBroker`); ``stop()``/``start()`` restart it on the same port with
    the same persistence; with ``tls``, a second, TLS-only listener on ``tls_port``."""

    def __init__(self, binary: str, data_dir: Path, port: int | None = None, tls: TlsFiles | None = None) -> None:
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        extra = [f"listener {self.tls_port} 127.0.0.1", f"cafile {tls.ca}", f"certfile {tls.cert}",
                 f"keyfile {tls.key}"] if tls is not None else []
        super().__init__(data_dir, "mosquitto", port, binary=binary, extra_config=extra)

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("this broker has no TLS listener (pass tls=TlsFiles)")
        return f"mqtts://{self.host}:{self.tls_port}"

    def restart(self) -> None:
        self.stop()
        self.start()


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


@pytest.fixture
def mosquitto_tls(tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker with a plain listener (``port``) and a TLS listener (``tls_port``, CA ``tls.ca``)."""
    binary = mosquitto_binary()
    broker = Broker(binary, tmp_path / "mosquitto", tls=make_tls_files(tmp_path / "tls"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

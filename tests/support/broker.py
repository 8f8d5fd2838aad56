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

Access control: ``Broker(..., password_file=, acl_file=)`` refuses anonymous clients and applies the ACL (a
password file made by `make_password_file` with ``mosquitto_passwd``); ``extra_config`` adds any other lines.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pdm.demo.broker import LocalBroker, find_mosquitto, free_port

__all__ = ["Accounts", "Broker", "TlsFiles", "find_mosquitto", "free_port", "make_password_file", "make_tls_files",
           "mosquitto_binary"]


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


@dataclass(frozen=True)
class Accounts:
    """A mosquitto password file and the (random) password of each user in it."""

    password_file: Path
    passwords: dict[str, str]


def make_password_file(path: Path, users: Iterable[str]) -> Accounts:
    """A password file with a random password per user, made with ``mosquitto_passwd`` (skips the test when it is
    missing)."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    path.parent.mkdir(parents=True, exist_ok=True)
    passwords = {user: secrets.token_urlsafe(18) for user in users}
    for i, (user, password) in enumerate(passwords.items()):
        out = subprocess.run([tool, *(["-c"] if i == 0 else []), "-b", str(path), user, password],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"mosquitto_passwd failed for {user!r}: {out.stderr.strip()}")
    return Accounts(path, passwords)


class Broker(LocalBroker):
    """One mosquitto process (`pdm.demo.broker.LocalBroker`); ``stop()``/``start()`` restart it on the same port with
    the same persistence; with ``tls``, a second, TLS-only listener on ``tls_port``; with ``password_file``, no
    anonymous clients; with ``acl_file``, that ACL; ``extra_config``: more configuration lines (last)."""

    def __init__(self, binary: str, data_dir: Path, port: int | None = None, tls: TlsFiles | None = None, *,
                 password_file: Path | None = None, acl_file: Path | None = None,
                 extra_config: Sequence[str] = ()) -> None:
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        extra = [f"listener {self.tls_port} 127.0.0.1", f"cafile {tls.ca}", f"certfile {tls.cert}",
                 f"keyfile {tls.key}"] if tls is not None else []
        if password_file is not None:
            extra += ["allow_anonymous false", f"password_file {password_file}"]  # global: every listener
        if acl_file is not None:
            extra.append(f"acl_file {acl_file}")
        super().__init__(data_dir, "mosquitto", port, binary=binary, extra_config=[*extra, *extra_config])

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

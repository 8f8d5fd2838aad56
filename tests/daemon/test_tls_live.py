"""The daemon over TLS (`mqtts://` + `--ca-file`) against a real mosquitto with a TLS listener whose CA and server
certificate are generated with openssl for the test: it restores, connects, scores and alerts; without the CA it
does not connect (the certificate is verified)."""

from __future__ import annotations

import threading
import time

import pytest

from pdm.daemon.service import Daemon
from tests.support.broker import Broker
from tests.support.daemon import (
    LIVE_START,
    Collector,
    Sender,
    machine_arrays,
    metric,
    retained,
    running,
    settings,
    simulate,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def test_daemon_over_tls_scores_and_alerts(mosquitto_tls: Broker) -> None:
    broker = mosquitto_tls
    assert broker.tls is not None
    frame, _ = simulate(4, 900, LIVE_START, fault_rate_per_day=0.0, forced=[])
    ts, values = machine_arrays(frame, "pump-001")
    values[200:800, 1] += 8.0
    collector = Collector(broker)  # test clients use the plain listener
    sender = Sender(broker)
    try:
        with running(settings(broker, broker=broker.tls_url, ca_file=broker.tls.ca)) as daemon:
            sender.batch("pump-001", ts, values)
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model="fleet") == 900 - 15, 30, "scoring")
            wait_for(lambda: any(a["event"] == "raised" for a in collector.alerts()), 10, "the alert")
            assert retained(broker, "pdm/v1/status/scorer/scorer-0")["state"] == "online"
        assert {a["machine_id"] for a in collector.alerts()} == {"pump-001"}
        log = broker.log_tail(200)
        assert "pdm-scorer-0of1" in log and "pdm-scorer-0of1-restore" in log  # both connections were made
    finally:
        sender.close()
        collector.close()


def test_without_the_ca_the_daemon_does_not_trust_the_broker(mosquitto_tls: Broker) -> None:
    daemon = Daemon(settings(mosquitto_tls, broker=mosquitto_tls.tls_url))  # system CAs only
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    try:
        time.sleep(3.0)  # several connection attempts (restore client, 1 s backoff)
        assert not daemon.ready.is_set() and not daemon.link.connected.is_set()
        ok, detail = daemon.health()
        assert not ok and "broker unreachable" in detail["problems"]
    finally:
        daemon.stop()
        thread.join(20)
    assert result == [0]
    log = mosquitto_tls.log_tail(200)
    assert "unknown ca" in log  # the daemon's TLS handshake rejected the broker's certificate
    assert "as pdm-scorer-0of1" not in log  # neither the restore client nor the session connected

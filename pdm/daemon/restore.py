"""Restoring open alerts from the daemon's own retained states, before it starts scoring.

A short-lived clean-session client subscribes to ``PREFIX/state/+`` and collects the retained states whose
``instance`` is this daemon's, whose machine belongs to this shard, and that carry an ``alert_id`` (an open
alert). It reads until no retained state has arrived for ``quiet_s`` (the broker sends retained messages right
after the subscription is acknowledged), or ``timeout_s``. This runs before the persistent session connects, so a
backlog of queued telemetry cannot overtake the states.

A retained state is untrusted input (anyone the broker lets publish there could have written it). Each is
validated and ignored, counted by reason, when it does not fit: with a state key (``PDM_STATE_KEY``) only states
whose signature verifies (`pdm.contract.verify_state`, ``bad_signature`` otherwise); then the contract's checks,
an ``alert_id`` of the form ``MACHINE-<window end in ms>`` with a window end and ``since`` from 2000 to before
2100 and a finite score (``bad_field``, `pdm.daemon.episodes.OpenAlert.untrusted`); a machine the allow-list allows
(``unknown_machine``) and at most ``--max-machines`` of them (``too_many_machines``). Without a key, a forged state
that passes these checks is indistinguishable from the daemon's own: the broker's ACL is then what keeps others
from writing there (docs/security.md). With ``--state-dir``, the daemon's own checkpoint comes first and retained
states only restore machines it does not hold.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pdm.contract import State, Topics, owns, parse_state, verify_state
from pdm.contract.errors import ContractError
from pdm.daemon.admission import TooManyMachinesError, UnknownMachineError
from pdm.daemon.episodes import OpenAlert
from pdm.daemon.settings import ServeSettings
from pdm.logs import RateLimitedLog
from pdm.mqtt.client import parse_broker, set_credentials

logger = logging.getLogger(__name__)


def open_alerts(settings: ServeSettings, stop: threading.Event, quiet_s: float = 0.5, timeout_s: float = 20.0, *,
                key: bytes | None = None, allowed: Callable[[str], bool] | None = None,
                ignored: Tally[str] | None = None) -> dict[str, State]:
    """Machine id -> its retained state with an open alert, as this instance last published it (validated, see
    the module; ``ignored`` counts what was not restored, by reason). Waits for the broker as long as it takes
    (the daemon can do nothing without it) unless ``stop`` is set."""
    topics = Topics(settings.prefix)
    host, port, tls = parse_broker(settings.broker)
    instance = settings.effective_instance
    found: dict[str, State] = {}
    skipped: Tally[str] = Tally() if ignored is None else ignored
    seen = [0]
    last = [time.monotonic()]
    sub_at = [0.0]
    subscribed = threading.Event()
    connect_failed: list[str] = []
    lock = threading.Lock()
    v5 = settings.mqtt_version == 5
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{settings.effective_client_id}-restore",
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
    set_credentials(client, settings, tls)

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            connect_failed.append(str(reason))
            return
        c.subscribe(topics.subscription("state"), qos=1)

    def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        last[0] = sub_at[0] = time.monotonic()
        subscribed.set()

    def on_message(c: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if not msg.retain:
                return
            machine = topics.machine_of(msg.topic, "state")
            with lock:
                seen[0] += 1
                last[0] = time.monotonic()
            if not owns(machine, settings.shard_index, settings.shard_count) or not msg.payload:
                return
            payload = bytes(msg.payload)
            state = verify_state(payload, key, machine) if key is not None else parse_state(payload, machine)
            if state.instance != instance or state.alert_id is None:
                return
            OpenAlert.untrusted(machine, state.alert_id, state.since, state.score, 0.0)  # validates, or raises
            if allowed is not None and not allowed(machine):
                raise UnknownMachineError(f"machine {machine!r} is not allowed (--allow-machines)")
            with lock:
                if len(found) >= settings.max_machines:
                    raise TooManyMachinesError(f"more than --max-machines {settings.max_machines} open alerts")
                found[machine] = state
        except ContractError as exc:
            with lock:
                skipped[exc.reason] += 1
            limited.warning(exc.reason, "ignoring a retained state on %s: %s: %s", msg.topic[:200], exc.reason, exc)
        except Exception:  # never let a raise end the network loop
            with lock:
                skipped["internal"] += 1
            limited.exception("internal", "reading a retained state on %s failed", msg.topic[:200])

    limited = RateLimitedLog(logger, every_s=10.0)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.reconnect_delay_set(1, 5)
    client.connect_async(host, port, keepalive=30)
    client.loop_start()
    started = time.monotonic()
    next_note = started + 10.0
    try:
        while not stop.wait(0.05):
            now = time.monotonic()
            if not subscribed.is_set():
                if now >= next_note:
                    next_note = now + 10.0
                    logger.warning("waiting for broker %s:%d to read retained states (%.0f s)%s", host, port,
                                   now - started, f"; refused: {connect_failed[-1]}" if connect_failed else "")
                continue
            with lock:
                if now - last[0] >= quiet_s:
                    break
                if now - sub_at[0] > timeout_s:
                    logger.warning("retained states still arriving after %.0f s; starting with %d read",
                                   timeout_s, seen[0])
                    break
    finally:
        client.disconnect()
        client.loop_stop()
    logger.info("read %d retained states: %d open alerts of %s to resume%s", seen[0], len(found), instance,
                f"; ignored {dict(skipped)}" if skipped else "")
    return found

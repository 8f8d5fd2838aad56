"""What the daemon publishes: alerts, retained states, dead letters and (optionally) scores, per the contract.

The publisher encodes and sends finished messages (the machines build them, `pdm.daemon.machines`), and counts and
logs what it sent. A state carries one field more than the contract's, ``quality`` (`pdm.daemon.quality`: drift,
data quality and the verdict); consumers that do not know it ignore it (the contract's rule), and
`pdm.contract.parse_state` still parses the state. With a state key (``PDM_STATE_KEY``), every state is signed
(`pdm.contract.sign_state`: ``"sig"`` appended), so a restarted daemon restores only what a scorer wrote.

Alerts, states and scores wait in an outbox until `flush` (the end of a micro-batch, after its checkpoint is
written: `pdm.daemon.checkpoint`), so a daemon killed in between has published nothing of what it will redo; dead
letters go out at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import paho.mqtt.client as mqtt

from pdm.contract import Alert, Rejected, State, Topics, sign_state
from pdm.daemon.metrics import Metrics
from pdm.daemon.mqtt_link import ScorerLink
from pdm.logs import RateLimitedLog

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(self, link: ScorerLink, topics: Topics, *, qos: int, metrics: Metrics,
                 key: bytes | None = None) -> None:
        self.link, self.topics, self.qos, self.metrics, self.key = link, topics, qos, metrics, key
        self.outbox: list[tuple[str, bytes, int, bool, bool]] = []  # topic, payload, qos, retain, is an alert
        self._log = RateLimitedLog(logger, every_s=10.0)

    def alert(self, msg: Alert) -> None:
        self.outbox.append((self.topics.alerts(msg.machine_id), msg.encode(), self.qos, False, True))
        self.metrics.alerts.labels(msg.event).inc()
        top = max(msg.contributions, key=lambda k: msg.contributions[k])
        logger.warning("alert %s %s on %s: score %.4g (threshold %.4g), top sensor %s", msg.alert_id, msg.event,
                       msg.machine_id, msg.score, msg.threshold, top)

    def state(self, msg: State, quality: dict[str, Any]) -> None:
        """A retained state with its ``quality`` object (signed with the key, if any)."""
        body = msg.encode()  # the contract's fields, then quality: {"schema":1,...,"quality":{...}}
        payload = body[:-1] + b',"quality":' + json.dumps(quality, separators=(",", ":"), allow_nan=False).encode() \
            + b"}"
        if self.key is not None:
            payload = sign_state(payload, self.key)
        self.outbox.append((self.topics.state(msg.machine_id), payload, self.qos, True, False))

    def scores(self, machine_id: str, body: dict[str, Any]) -> None:
        self.outbox.append((self.topics.scores(machine_id), json.dumps(body, allow_nan=False).encode(), 0, False,
                            False))

    def pending_alerts(self) -> list[tuple[str, bytes]]:
        """The alerts in the outbox (topic, payload): what a checkpoint keeps until they are delivered."""
        return [(t, p) for t, p, _, _, is_alert in self.outbox if is_alert]

    def flush(self) -> list[mqtt.MQTTMessageInfo]:
        """Send the outbox in order; returns the alerts' publications (delivered once each is published)."""
        out, self.outbox = self.outbox, []
        alerts = []
        for topic, payload, qos, retain, is_alert in out:
            info = self.link.publish(topic, payload, qos, retain=retain)
            if is_alert:
                alerts.append(info)
        return alerts

    def republish(self, alerts: list[tuple[str, bytes]]) -> list[mqtt.MQTTMessageInfo]:
        """Alerts a checkpoint holds as not yet delivered (a daemon killed before the broker acknowledged them)."""
        return [self.link.publish(topic, payload, self.qos) for topic, payload in alerts]

    def rejected(self, topic: str, reason: str, detail: str, payload: bytes) -> None:
        self.metrics.rejected.labels(reason).inc()
        self._log.warning(f"rejected:{reason}", "rejected a message on %s: %s: %s", topic[:200], reason, detail)
        msg = Rejected.build(topic, reason, detail[:1000], payload)
        self.link.publish(self.topics.rejected(), msg.encode(), 0)

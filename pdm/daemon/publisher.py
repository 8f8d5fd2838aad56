"""What the daemon publishes: alerts, retained states, dead letters and (optionally) scores, per the contract.

The publisher encodes and sends finished messages (the machines build them, `pdm.daemon.machines`), and counts and
logs what it sent. A state carries one field more than the contract's, ``quality`` (`pdm.daemon.quality`: drift,
data quality and the verdict); consumers that do not know it ignore it (the contract's rule), and
`pdm.contract.parse_state` still parses the state.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pdm.contract import Alert, Rejected, State, Topics
from pdm.daemon.metrics import Metrics
from pdm.daemon.mqtt_link import ScorerLink
from pdm.logs import RateLimitedLog

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(self, link: ScorerLink, topics: Topics, *, qos: int, metrics: Metrics) -> None:
        self.link, self.topics, self.qos, self.metrics = link, topics, qos, metrics
        self._log = RateLimitedLog(logger, every_s=10.0)

    def alert(self, msg: Alert) -> None:
        self.link.publish(self.topics.alerts(msg.machine_id), msg.encode(), self.qos)
        self.metrics.alerts.labels(msg.event).inc()
        top = max(msg.contributions, key=lambda k: msg.contributions[k])
        logger.warning("alert %s %s on %s: score %.4g (threshold %.4g), top sensor %s", msg.alert_id, msg.event,
                       msg.machine_id, msg.score, msg.threshold, top)

    def state(self, msg: State, quality: dict[str, Any]) -> None:
        """A retained state with its ``quality`` object."""
        body = msg.encode()  # the contract's fields, then quality: {"schema":1,...,"quality":{...}}
        payload = body[:-1] + b',"quality":' + json.dumps(quality, separators=(",", ":")).encode() + b"}"
        self.link.publish(self.topics.state(msg.machine_id), payload, self.qos, retain=True)

    def rejected(self, topic: str, reason: str, detail: str, payload: bytes) -> None:
        self.metrics.rejected.labels(reason).inc()
        self._log.warning(f"rejected:{reason}", "rejected a message on %s: %s: %s", topic, reason, detail)
        msg = Rejected.build(topic, reason, detail[:1000], payload)
        self.link.publish(self.topics.rejected(), msg.encode(), 0)

    def scores(self, machine_id: str, body: dict[str, Any]) -> None:
        self.link.publish(self.topics.scores(machine_id), json.dumps(body).encode(), 0)

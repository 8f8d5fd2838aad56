"""What the daemon publishes: alerts, retained states, dead letters and (optionally) scores, per the contract.

A state carries one field more than the contract's, ``quality`` (`pdm.daemon.quality`: drift, data quality and the
verdict); consumers that do not know it ignore it (the contract's rule), and `pdm.contract.parse_state` still
parses the state.
"""

from __future__ import annotations

import json
import logging
import time

from pdm.contract import Alert, Rejected, State, Topics
from pdm.daemon.episodes import Event, severity
from pdm.daemon.machines import MachineState
from pdm.daemon.metrics import Metrics
from pdm.daemon.mqtt_link import ScorerLink
from pdm.daemon.quality import DriftSettings
from pdm.logs import RateLimitedLog

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(self, link: ScorerLink, topics: Topics, *, instance: str, qos: int, metrics: Metrics,
                 heartbeat_s: float, rules: DriftSettings | None = None) -> None:
        self.link, self.topics, self.instance, self.qos = link, topics, instance, qos
        self.metrics, self.heartbeat_s = metrics, heartbeat_s
        self.rules = rules or DriftSettings()
        self._log = RateLimitedLog(logger, every_s=10.0)

    def alert(self, m: MachineState, event: Event) -> None:
        a = event.alert
        msg = Alert(alert_id=a.alert_id, machine_id=m.machine_id, event=event.kind,  # type: ignore[arg-type]
                    ts=event.ts, window_start=a.window_start, window_end=a.window_end, score=event.score,
                    threshold=m.slot.threshold, severity=severity(event.score, m.slot.threshold),
                    contributions=event.contributions, model=m.slot.ref, instance=self.instance)
        self.link.publish(self.topics.alerts(m.machine_id), msg.encode(), self.qos)
        self.metrics.alerts.labels(event.kind).inc()
        top = max(event.contributions, key=lambda k: event.contributions[k])
        logger.warning("alert %s %s on %s: score %.4g (threshold %.4g), top sensor %s", a.alert_id, event.kind,
                       m.machine_id, event.score, m.slot.threshold, top)

    def state(self, m: MachineState, now_mono: float) -> None:
        state = m.state
        if state != m.published_state:
            m.state_since = m.last_ts if m.last_ts is not None else time.time()
        a = m.open_alert
        msg = State(machine_id=m.machine_id, state=state, since=m.state_since,  # type: ignore[arg-type]
                    alert_id=a.alert_id if a else None, score=m.last_score, threshold=m.slot.threshold,
                    model=m.slot.ref, instance=self.instance, ts=time.time())
        quality = m.quality.report(m.slot.drift, m.machine_id, m.slot.features, a is not None, self.rules)
        if quality["drift_psi"] is not None:
            self.metrics.drift_psi.labels(m.slot.name).observe(quality["drift_psi"])
        body = msg.encode()  # the contract's fields, then quality: {"schema":1,...,"quality":{...}}
        payload = body[:-1] + b',"quality":' + json.dumps(quality, separators=(",", ":")).encode() + b"}"
        self.link.publish(self.topics.state(m.machine_id), payload, self.qos, retain=True)
        m.published_state = state
        m.next_heartbeat = now_mono + self.heartbeat_s

    def rejected(self, topic: str, reason: str, detail: str, payload: bytes) -> None:
        self.metrics.rejected.labels(reason).inc()
        self._log.warning(f"rejected:{reason}", "rejected a message on %s: %s: %s", topic, reason, detail)
        msg = Rejected.build(topic, reason, detail[:1000], payload)
        self.link.publish(self.topics.rejected(), msg.encode(), 0)

    def scores(self, m: MachineState, end_ts: float, score: float, shares: dict[str, float]) -> None:
        body = {"schema": 1, "machine_id": m.machine_id, "ts": end_ts, "score": score,
                "threshold": m.slot.threshold, "contributions": shares, "model": m.slot.ref.model_dump(),
                "instance": self.instance}
        self.link.publish(self.topics.scores(m.machine_id), json.dumps(body).encode(), 0)

"""Prometheus metrics and the health endpoint, served on one port (``/metrics``, ``/healthz``).

``/healthz`` answers 200 with ``{"ok": true, ...}`` while the broker connection is up and the scoring loop keeps
making progress, and 503 with the reason otherwise (broker unreachable, or no loop iteration for
``--stall-timeout`` seconds while messages wait).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, dict[str, object]]]
PSI_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 5.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Metrics:
    """Every metric of the daemon, in its own registry (several daemons can live in one test process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.messages = Counter("pdm_messages", "MQTT messages received, by kind", ["kind"], registry=r)
        self.other_shard = Counter("pdm_messages_other_shard", "telemetry messages of other shards, dropped "
                                   "unparsed", registry=r)
        self.readings = Counter("pdm_readings", "telemetry readings applied to a window", registry=r)
        self.rejected = Counter("pdm_rejected", "messages dropped as invalid, by reason", ["reason"], registry=r)
        self.duplicates = Counter("pdm_duplicate_readings", "readings dropped as duplicates (same ts or repeated "
                                  "seq)", registry=r)
        self.late = Counter("pdm_late_readings", "readings dropped as older than the machine's newest", registry=r)
        self.seq_gaps = Counter("pdm_seq_gap_messages", "telemetry messages missing upstream (seq jumped)",
                                registry=r)
        self.extra_fields = Counter("pdm_extra_fields", "unknown telemetry fields ignored", registry=r)
        self.gaps = Counter("pdm_window_restarts", "windows restarted by a gap in the data", registry=r)
        self.muted = Counter("pdm_windows_muted", "windows not scored because of maintenance", registry=r)
        self.windows = Counter("pdm_windows_scored", "windows scored, by model", ["model"], registry=r)
        self.batch_size = Histogram("pdm_batch_windows", "windows per scoring call", ["model"], registry=r,
                                    buckets=BATCH_BUCKETS)
        self.latency = Histogram("pdm_scoring_latency_seconds", "message arrival to its windows scored and alerts "
                                 "published", registry=r, buckets=LATENCY_BUCKETS)
        self.score_seconds = Histogram("pdm_model_call_seconds", "seconds per scoring call", ["model"], registry=r,
                                       buckets=LATENCY_BUCKETS)
        self.queue_depth = Gauge("pdm_queue_depth", "messages waiting for the scoring loop", registry=r)
        self.unacked = Gauge("pdm_unacked_messages", "QoS 1 messages received and not yet acknowledged", registry=r)
        self.backpressure = Counter("pdm_backpressure", "times the daemon held back the broker, by kind "
                                    "(receive_maximum: acks withheld; queue_full: network thread blocked)",
                                    ["kind"], registry=r)
        self.alerts = Counter("pdm_alerts", "alert events published", ["event"], registry=r)
        self.machines = Gauge("pdm_machines", "machines by state", ["state"], registry=r)
        self.model_info = Gauge("pdm_model_info", "loaded models (value 1)", ["model", "version"], registry=r)
        self.reconnects = Counter("pdm_reconnects", "connections to the broker after the first", registry=r)
        self.connected = Gauge("pdm_broker_connected", "1 while connected to the broker", registry=r)
        self.restored = Counter("pdm_alerts_restored", "open alerts restored from retained states", registry=r)
        self.reloads = Counter("pdm_model_reloads", "new model versions hot-reloaded (result=loaded) or refused "
                               "(result=refused)", ["model", "result"], registry=r)
        self.model_errors = Gauge("pdm_model_errors", "models whose current version was refused (the status's "
                                  "model_errors)", registry=r)
        self.reload_unscored = Counter("pdm_reload_unscored_windows", "windows not scored after a swap to a longer "
                                       "window (the ring did not hold its history)", registry=r)
        # fleet level on purpose: a series per machine would be 10,000 series per metric
        self.quality = Gauge("pdm_machines_quality", "machines by model, data-quality verdict and drift level (as "
                             "their last published state says)", ["model", "verdict", "drift"], registry=r)
        self.drift_psi = Histogram("pdm_drift_psi", "each machine's drift PSI, observed with every state it publishes "
                                   "(heartbeats: about once per machine per --heartbeat)", ["model"], registry=r,
                                   buckets=PSI_BUCKETS)
        # untrusted input (issue 14): what was contained, dropped, refused or evicted
        self.errors = Counter("pdm_errors", "exceptions contained where they happened (message, machine, batch, "
                              "state, housekeeping, reload, restore, checkpoint), each logged rate-limited",
                              ["where"], registry=r)
        self.windows_failed = Counter("pdm_windows_failed", "windows not fed to the alarm rule, by reason "
                                      "(non_finite_score, machine_error, scoring_error)", ["reason"], registry=r)
        self.restore_ignored = Counter("pdm_restore_ignored", "retained states or checkpoint records not restored, "
                                       "by reason (bad_signature, bad_field, not_allowed, ...)", ["reason"],
                                       registry=r)
        self.clock_restarts = Counter("pdm_clock_restarts", "machine streams restarted because the machine's clock "
                                      "jumped back", registry=r)
        self.evicted = Counter("pdm_machines_evicted", "machines forgotten after --evict-after without a message",
                               registry=r)
        self.stuck = Gauge("pdm_machines_stuck", "machines receiving readings that make no window (3 windows' worth "
                           "late, duplicate or gapped)", registry=r)
        self.checkpoint_seconds = Histogram("pdm_checkpoint_seconds", "seconds per checkpoint write (--state-dir)",
                                            registry=r, buckets=LATENCY_BUCKETS)
        self._quality_seen: set[tuple[str, str, str]] = set()

    def set_quality(self, tally: Mapping[tuple[str, str, str], int]) -> None:
        """Machines per (model, verdict, drift) now; combinations no machine has any more go to 0."""
        self._quality_seen |= set(tally)
        for key in self._quality_seen:
            self.quality.labels(*key).set(tally.get(key, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """``/metrics`` and ``/healthz`` on a background thread."""

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        render = metrics.render

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    self._send(200, render(), CONTENT_TYPE_LATEST)
                elif self.path.startswith("/healthz"):
                    ok, detail = health()
                    self._send(200 if ok else 503, json.dumps({"ok": ok, **detail}).encode(), "application/json")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("http: " + format, *args)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="pdm-metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()
        logger.info("metrics on http://%s:%d/metrics, health on /healthz", *self.server.server_address[:2])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

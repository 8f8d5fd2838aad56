"""The scoring daemon (``python -m pdm serve``): subscribes to the fleet's telemetry, keeps a window per machine,
scores micro-batches with the compiled scoring path, and raises and clears alerts over MQTT per
docs/mqtt-contract.md. See docs/daemon.md.

Modules: `settings` (the one settings object), `mqtt_link` (paho client, persistent session, back-pressure),
`restore` (open alerts from retained states), `machines` (per machine: the window stream its model hands out,
`pdm.detectors.stream`, its alert episode, maintenance, model swaps and the messages it publishes), `episodes`
(alarm rule to raised/cleared events), `models` (loading, routing, the fit check), `reload` (model hot reload: the
watcher thread), `scoring` (the micro-batch loop body), `publisher` (encodes and sends finished messages),
`quality` (drift and data quality per machine, the verdict), `status` (the retained status), `metrics` (Prometheus
and /healthz), `service` (wiring, threads, clean stop); for untrusted input: `admission` (allow-list, cap, the
model's range), `upkeep` (housekeeping: stale, heartbeats, eviction, stuck machines), `checkpoint` (``--state-dir``:
a killed daemon resumes exactly).
"""

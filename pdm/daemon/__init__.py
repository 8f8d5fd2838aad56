"""The scoring daemon (``python -m pdm serve``): subscribes to the fleet's telemetry, keeps a window per machine,
scores micro-batches with the compiled scoring path, and raises and clears alerts over MQTT per
docs/mqtt-contract.md. See docs/daemon.md.

Modules: `settings` (the one settings object), `mqtt_link` (paho client, persistent session, back-pressure),
`restore` (open alerts from retained states), `ring` (a machine's ring buffer), `machines` (reading rules, model
swaps per machine), `episodes` (alarm rule to raised/cleared events), `models` (loading, routing, the fit check),
`reload` (model hot reload: the watcher thread), `scoring` (the micro-batch loop body), `publisher` (contract
payloads), `quality` (drift and data quality per machine, the verdict), `status` (the retained status), `metrics`
(Prometheus and /healthz), `service` (wiring, threads, clean stop).
"""

"""The scoring daemon (``python -m pdm serve``): subscribes to the fleet's telemetry, keeps a window per machine,
scores micro-batches with the compiled scoring path, and raises and clears alerts over MQTT per
docs/mqtt-contract.md. See docs/daemon.md.

Modules: `settings` (the one settings object), `mqtt_link` (paho client, persistent session, back-pressure),
`restore` (open alerts from retained states), `machines` (ring buffers and reading rules), `episodes` (alarm rule
to raised/cleared events), `scoring` (the micro-batch loop body), `publisher` (contract payloads), `metrics`
(Prometheus and /healthz), `service` (wiring, threads, clean stop).
"""

"""What every long-running MQTT client of pdm (the scoring daemon, the recorder) shares.

Modules: `settings` (`ConnectionSettings`: broker, TLS, credentials, persistent session and shard settings with
their validators, the environment and config-file sources, `SettingsError`), `loading` (settings from flags,
environment, config file and defaults; the flags generated from a schema), `client` (the paho client of a
persistent session and `SessionLink`, the connection both links build on).
"""

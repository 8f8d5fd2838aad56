"""The recorder (``python -m pdm record``, or embedded in ``serve --record-dir``): subscribes to the MQTT
contract's topics and records validated telemetry, scores, alerts, state transitions, maintenance windows, truth
events, rejections and statuses as Hive-partitioned Parquet (``ROOT/<table>/date=YYYY-MM-DD/part-*.parquet``),
through fsynced write-ahead segments. ``read_table`` and the ``periods`` helpers are what retraining reads.
See docs/recorder.md.

Modules: `settings` (the one settings object), `link` (paho client, persistent session, manual acks), `handler`
(message to rows, rejections counted), `buffers` (rows of one flush interval), `segments` (write-ahead Arrow IPC
files), `journal` (buffers to segments), `compact` (segments to Parquet, atomically), `retention` (oldest dates
removed), `service` (the `Recorder`: threads, start/stop), `reader` (`read_table`), `periods` (what training must
leave out), `schema` (tables and layout), `counters`.
"""

from pdm.mqtt.settings import SettingsError
from pdm.recorder.periods import (
    REASONS,
    alert_periods,
    exclusion_periods,
    fault_periods,
    maintenance_periods,
    mark_excluded,
    state_periods,
    summarize,
)
from pdm.recorder.reader import available_dates, machines_of_type, read_table, sensor_columns, to_epoch
from pdm.recorder.schema import TABLES, RecorderError, table_specs
from pdm.recorder.service import Recorder, recording
from pdm.recorder.settings import RecordSettings, for_serve, load_settings

__all__ = [
    "REASONS",
    "TABLES",
    "RecordSettings",
    "Recorder",
    "RecorderError",
    "SettingsError",
    "alert_periods",
    "available_dates",
    "exclusion_periods",
    "fault_periods",
    "for_serve",
    "load_settings",
    "machines_of_type",
    "maintenance_periods",
    "mark_excluded",
    "read_table",
    "recording",
    "sensor_columns",
    "state_periods",
    "summarize",
    "table_specs",
    "to_epoch",
]

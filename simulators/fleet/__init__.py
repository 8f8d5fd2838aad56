"""The fleet simulator: pumps, compressors and motors with labelled machine and sensor faults.

Run ``python -m simulators.fleet --help``. Modules: ``config`` (settings and their parsing), ``machines``
(physics, vectorised across machines), ``faults`` (fault types, scheduling, effects), ``engine`` (blocks of
simulated time), ``offline`` (Parquet/CSV), ``live`` (MQTT per docs/mqtt-contract.md), ``plot`` (PNG).
See docs/simulator.md.
"""

"""The PCA baseline on the Tennessee Eastman process, loaded as ``benchmarks/real_data.py`` loads it.

Needs the public benchmark data (``$PDM_SHARED_DATA`` or ``../shared/data`` beside the checkout); skipped with the
reason when it is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from pdm.evaluation import datasets as ds


@pytest.mark.skipif(ds.missing_reason("tep") is not None, reason=str(ds.missing_reason("tep")))
def test_pca_detects_the_feed_ratio_step_with_few_false_alarms() -> None:
    """IDV(1), a step in the A/C feed ratio, is caught on nearly every row after its onset by PCA T²+Q in the usual
    TEP protocol (per-sample verdict, label-free threshold at a 1 % target); the normal test run stays quiet."""
    from pdm.detectors.pca import PCADetector

    det = PCADetector(features=ds.TEP_FEATURES, alarm_k=1, alarm_n=1, alarm_m=1, threshold_method="pot",
                      target_false_alarm_rate=0.01)
    det.fit({"tep": ds.tep_frame("d00")})
    faulty = det.detect(ds.tep_frame(ds.tep_test_name(1)), machine_id="tep")["exceeds"].to_numpy()
    normal = det.detect(ds.tep_frame(ds.tep_test_name(0)), machine_id="tep")["exceeds"].to_numpy()
    assert len(faulty) == 960 and len(normal) == 960
    assert np.mean(faulty[ds.TEP_FAULT_START + 10 :]) > 0.97  # the literature: 99 % for PCA on IDV(1)
    assert np.mean(faulty[: ds.TEP_FAULT_START]) < 0.10
    assert np.mean(normal) < 0.10


@pytest.mark.skipif(ds.missing_reason("smd") is not None, reason=str(ds.missing_reason("smd")))
def test_smd_interpretation_matches_the_labels() -> None:
    """Each segment of the interpretation file is a run of label 1 in the test file (rows [start, end))."""
    machine = ds.smd_machines()[0]
    _, test, segments = ds.smd_data(machine)
    labels = test["label"].to_numpy()
    assert segments and all(labels[s.start : s.end].all() for s in segments)
    inside = np.zeros(len(labels), dtype=bool)
    for s in segments:
        inside[s.start : s.end] = True
    assert np.array_equal(inside, labels == 1)

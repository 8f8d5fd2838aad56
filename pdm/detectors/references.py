"""Reference sensors: score a sensor as its difference to another, e.g. a machine's temperature over the ambient.

A machine's temperature follows the weather. A model trained in a cool week sees a warm one as a machine running
hot, and a model trained in summer misses an overheating in winter. Where the plant measures the ambient (or a
coolant inlet, or any reading that carries the part of a sensor the machine is not responsible for), the detector
can judge the sensor relative to it: ``references={"temperature": "ambient"}`` scores ``temperature - ambient``,
the machine's own heating, in place of the temperature.

The reference sensor is an input only: its values enter the model as a constant 0, so it is never scored itself and
its share of any score is 0. It stays one of the model's sensors (``feature_names``): each message must carry it,
and the daemon's data-quality rules on raw readings (stuck, missing) still judge it. The spike rule works on what
the model judges, so a spike of the reference shows as a spike of its targets (and is held there). A missing
reference makes its targets missing for that reading (the model's missing-value rule carries them forward).
Neither a referred sensor nor its reference gets a rest level for the drift rule (the raw temperature at rest
follows the weather). One reference may serve several sensors; a reference cannot itself be referred.

>>> import numpy as np
>>> refs = References.resolve({"temperature": "ambient"}, ["temperature", "vibration", "ambient"])
>>> refs.apply(np.array([[61.0, 2.0, 21.0], [62.0, 2.1, np.nan]])).tolist()
[[40.0, 2.0, 0.0], [nan, 2.1, 0.0]]
>>> refs.inputs_only(["temperature", "vibration", "ambient"])
['ambient']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from pdm.detectors.frames import PreparedFrame
from pdm.errors import DataError


def check_references(references: Mapping[str, str] | None) -> dict[str, str]:
    """The mapping sensor -> reference sensor, validated without the model's sensors (`DataError` otherwise)."""
    if references is None:
        return {}
    if not isinstance(references, Mapping):
        raise DataError(f"references: found {type(references).__name__}, expected a mapping sensor -> reference")
    out: dict[str, str] = {}
    for target, ref in references.items():
        if not isinstance(target, str) or not isinstance(ref, str) or not target or not ref:
            raise DataError(f"references: found {target!r} -> {ref!r}, expected sensor names")
        if target == ref:
            raise DataError(f"references: found {target!r} -> {ref!r}, expected a sensor other than itself")
        out[target] = ref
    chained = sorted(set(out) & set(out.values()))
    if chained:
        raise DataError(f"references: found {chained} both referred and a reference, expected a reference that is "
                        "only an input")
    return out


@dataclass(frozen=True)
class References:
    """Column pairs (target, reference) of a model's sensors; an empty one changes nothing."""

    pairs: tuple[tuple[int, int], ...] = ()

    @classmethod
    def resolve(cls, references: Mapping[str, str] | None, features: Sequence[str]) -> References:
        """The pairs of ``references`` among ``features`` (`DataError` naming a sensor that is not one)."""
        refs = check_references(references)
        names = list(features)
        missing = sorted({n for pair in refs.items() for n in pair} - set(names))
        if missing:
            raise DataError(f"references: found {missing}, expected sensors of the model {names} (a reference "
                            "sensor is one of the model's inputs)")
        return cls(tuple((names.index(t), names.index(r)) for t, r in refs.items()))

    def apply(self, values: np.ndarray) -> np.ndarray:
        """(n, F) raw readings -> what the model judges: each target minus its reference, references 0 (a copy;
        ``values`` itself when there are no pairs)."""
        if not self.pairs:
            return values
        out = np.array(values, dtype=np.float64, copy=True)
        for target, ref in self.pairs:
            out[:, target] = values[:, target] - values[:, ref]
        for ref in {r for _, r in self.pairs}:
            out[:, ref] = 0.0
        return out

    def inputs_only(self, features: Sequence[str]) -> list[str]:
        """The reference sensors (inputs, never scored), by name."""
        return [features[r] for r in sorted({r for _, r in self.pairs})]

    def prepared(self, frame: PreparedFrame) -> PreparedFrame:
        """``frame`` with `apply`'d values (``frame`` itself when there are no pairs)."""
        return replace(frame, values=self.apply(frame.values)) if self.pairs else frame

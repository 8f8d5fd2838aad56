"""How detections are judged (`pdm.evaluation.judge`), tabulated (`pdm.evaluation.table`) and drawn
(`pdm.evaluation.plots`, matplotlib, imported only when a plot is asked for). Used by ``evaluate``, the demo,
retraining and the benchmarks. Row-labelled benchmark figures (point adjustment, attribution hit rate, ROC AUC):
`pdm.evaluation.pointwise`; the public benchmark data sets: `pdm.evaluation.datasets`."""

from pdm.evaluation.judge import (
    DAY_S,
    EventResult,
    FaultSpan,
    MachineResult,
    Report,
    alarm_episodes,
    evaluate_machine,
    judge_rows,
    label_spans,
    label_value,
    summarise,
)

__all__ = ["DAY_S", "EventResult", "FaultSpan", "MachineResult", "Report", "alarm_episodes", "evaluate_machine",
           "judge_rows", "label_spans", "label_value", "summarise"]

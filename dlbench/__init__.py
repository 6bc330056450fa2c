"""dlbench's machinery, split where the process boundary runs.

- `protocol`: the job config, the status vocabulary and the event channel; the only module both sides share.
- `worker/`: runs inside a framework's interpreter (standard library, numpy, `tasks/` and one adapter):
  the epoch loop and clocks, parity measurements, input-pipeline measurements.
- `driver/`: runs in the harness's interpreter: provenance, worker supervision, the matrix, executors,
  results storage, the progress display.
- `analysis/`: reads what the driver wrote: report, statistics, plots, parity tables, assessment,
  micro-benchmark tables (pandas, scipy, matplotlib).
"""

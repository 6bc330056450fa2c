"""The worker side: runs inside one framework's interpreter, `python -m dlbench.worker CONFIG.json`.

Imports the standard library, numpy, `tasks/`, `dlbench.protocol` and the one adapter it is asked to
run; never pandas, rich, scipy, matplotlib or ray (tests/test_layout.py checks, under MXNet's numpy 1.23
too).
"""

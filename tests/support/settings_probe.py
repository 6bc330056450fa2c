"""Print one adapter's `settings()` for each tier, one JSON line a tier:
`python tests/support/settings_probe.py MODULE TIER [TIER ...]`.

The framework is imported once; each tier's configure() then runs in a child forked from that process
(a framework's thread pools may be set once per process: torch.set_num_interop_threads)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

ad = importlib.import_module(sys.argv[1])
for tier in sys.argv[2:]:
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            ad.configure(1, "cpu", "fp32", False, tier)
            print(json.dumps({"tier": tier, "settings": ad.settings()}), flush=True)
        except Exception as e:  # the parent reads the line: a tier the adapter refuses
            print(json.dumps({"tier": tier, "error": f"{type(e).__name__}: {e}"}), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)

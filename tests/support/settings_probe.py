"""Print one adapter's `settings()` for one tier, as JSON: `python tests/support/settings_probe.py MODULE TIER`."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

ad = importlib.import_module(sys.argv[1])
ad.configure(1, "cpu", "fp32", False, sys.argv[2])
print(json.dumps(ad.settings()))

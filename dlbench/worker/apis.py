"""Whether each framework name an adapter uses is public API in this interpreter's release.

    python -m dlbench.worker.apis NAME...   (`harness.py assess`, in the framework's interpreter)

Prints one JSON line: each dotted name ("torch.nn.functional.cross_entropy") as "public", "private" (a part
of its path starts with one underscore: not the framework's documented API), "deprecated: WARNING" (its
import or attribute access warned) or "missing: WHY" (it does not resolve in this release). A name whose top
package is not installed here (a Keras adapter's other backends) is "not installed". Standard library only.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings


def check(name: str) -> str:
    """One dotted name's standing in this interpreter."""
    parts = name.split(".")
    try:
        importlib.import_module(parts[0])
    except ImportError:
        return "not installed"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj, i = None, len(parts)
        while i > 0:  # the longest importable module prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ImportError:
                i -= 1
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError as e:
            return f"missing: {e}"[:200]
    if any(p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in parts):
        return "private"
    warned = [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    return f"deprecated: {warned[0].message}"[:200] if warned else "public"


if __name__ == "__main__":
    print(json.dumps({name: check(name) for name in sys.argv[1:]}))

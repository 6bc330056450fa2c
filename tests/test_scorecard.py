"""The scorecard (dlbench/analysis/scorecard.py, docs/scorecard.md): the README's first table, every column's
header a link to how it is measured, every cell filled from a measurement or a dated fact; its parts tested
against hand-made rows."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from dlbench.analysis import cadence
from dlbench.analysis.scorecard import accuracy_cell, memory_cell, scorecard, speed_cell
from dlbench.analysis.speed import Sitting, across_tasks
from tests.support.cli import ROOT
from tests.support.rows import speed_row


def _first_table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def _slugs(markdown: str) -> set[str]:
    heads = re.findall(r"^#{2,3} (.+)$", markdown, flags=re.M)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in heads}


def test_the_readmes_first_table_is_the_scorecard_every_header_links_to_its_section_and_every_cell_is_filled():
    table = _first_table((ROOT / "README.md").read_text())
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[0] == "framework" and len(header) >= 10, header
    slugs = _slugs((ROOT / "docs" / "scorecard.md").read_text())
    for cell in header[1:]:
        m = re.fullmatch(r"\[[^\]]+\]\(docs/scorecard\.md#([a-z0-9-]+)\)", cell)
        assert m and m.group(1) in slugs, cell
    for row in table[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(c and c != "—" for c in cells), row
        assert not re.search(r"not measured|has not been run", row), row


def _sitting() -> Sitting:
    """Two tasks, four groups: torch the anchor, jax 2x on both, jax's tuned candidate 1x on Iris only, and
    fake memory fields on every row (jax adds 100 MiB on Iris, 300 on MNIST)."""
    rows = []
    for task, added in (("iris_mlp", 100.0), ("mnist_cnn", 300.0)):
        for fw, value, cand in (("torch", 1.0, ""), ("jax", 2.0, ""), ("jax", 1.0, "scan")):
            if task == "mnist_cnn" and cand:
                continue
            for g in range(4):
                r = speed_row("s", fw, value * (1 + 0.01 * g), g, task=task, candidate=cand)
                r["tier"] = "tuned" if cand else "default"
                r.update(rss_before_build_mib=500.0, timed_peak_rss_mib=500.0 + (added if fw == "jax" else 10.0))
                rows.append(r)
    return Sitting(rows, "s")


def test_the_speed_cell_says_what_the_across_tasks_family_says_for_both_tiers():
    s = _sitting()
    found = {c.framework: c for c in across_tasks(s)}
    assert speed_cell(s, "jax", 0.1) == f"{found['jax'].words}; tuned: {found['jax (tuned)'].words}"
    assert speed_cell(s, "torch", 0.1) == "anchor"
    assert found["jax"].ratio == pytest.approx(2.0) and found["jax (tuned)"].ratio == pytest.approx(2**0.5)


def test_memory_comes_from_the_speed_rows_where_they_carry_it_else_from_the_runs():
    s = _sitting()
    assert memory_cell(s, pd.DataFrame(), "jax") == ("100 · 300", "speed")
    for r in s.rows:
        r.pop("timed_peak_rss_mib")
    runs = pd.DataFrame(
        [
            {"framework": "jax", "task": t, "train_peak_rss_mib": 900.0 + k, "rss_before_train_mib": 800.0}
            for t in ("iris_mlp", "mnist_cnn")
            for k in (0, 10, 20)
        ]
    )
    assert memory_cell(s, runs, "jax") == ("110 · 110", "runs")


@pytest.mark.parametrize(
    ("task", "accs", "expected"),
    [
        ("mnist_cnn", [0.991, 0.990, 0.992], "99.1 % ✓"),
        ("mnist_cnn", [0.980, 0.981, 0.979], "98.0 % (-1.0 pt)"),  # 99.00 % published, tolerance 0.3 pt
        ("iris_mlp", [0.8667] * 3, "86.7 % ✓"),  # no published figure: its floor, 0.80
        ("imdb_lstm", [], "— (no runs)"),
    ],
)
def test_accuracy_is_the_median_against_the_published_figure_within_the_gate(task, accs, expected):
    runs = pd.DataFrame(
        [{"framework": "jax", "task": task, "test_accuracy": a} for a in accs],
        columns=["framework", "task", "test_accuracy"],
    )
    assert accuracy_cell(runs, "jax", task) == expected


def test_release_cadence_counts_final_unyanked_releases_in_the_24_months_before_the_snapshot():
    def upload(day, yanked=False):
        return [{"upload_time_iso_8601": f"{day}T10:00:00Z", "yanked": yanked}]

    pypi = {
        "releases": {
            "1.0": upload("2023-01-10"),
            "2.0": upload("2025-03-01"),
            "2.1rc1": upload("2025-04-01"),  # a pre-release: not counted
            "2.1": upload("2025-05-01"),
            "2.2": upload("2025-06-01", yanked=True),
            "3.0": upload("2026-11-01"),
            "nonsense!": upload("2026-11-02"),
        }
    }
    history = [list(vd) for vd in cadence.releases(pypi)]
    assert [v for v, _ in history] == ["1.0", "2.0", "2.1", "3.0"]
    c = cadence.cadence("x", history, "2026-12-01")
    assert (c.count, c.median_gap_days, c.days_since_last) == (3, (61 + 549) / 2, 30)


def test_assess_offline_names_its_snapshot_in_one_line_and_online_failure_keeps_it(tmp_path, monkeypatch, capsys):
    import urllib.request

    import harness
    from dlbench.driver import assess

    snapshot = tmp_path / "releases.json"
    snapshot.write_text(json.dumps({"read_on": "2026-01-02", "source": "s", "projects": {"torch": []}}))
    monkeypatch.setattr(cadence, "SNAPSHOT", snapshot)
    monkeypatch.setattr(assess, "measure", lambda *a, **k: {"measured_at": "t", "threads": 1})
    monkeypatch.setattr(assess, "prepare", lambda *a, **k: (None, None))
    monkeypatch.setattr(assess, "machine", lambda: {"cpu": "test"})
    assert harness.main(["assess", "--results", str(tmp_path / "r")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "release histories" in line]
    assert len(said) == 1 and "2026-01-02" in said[0]

    def unreachable(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    before = snapshot.read_bytes()
    assert harness.main(["assess", "--online", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "snapshot stays" in err[0] and snapshot.read_bytes() == before


def test_the_scorecard_of_a_sitting_without_runs_or_assessment_says_where_each_figure_is_missing():
    text = scorecard(_sitting(), pd.DataFrame())
    assert "— (no runs)" in text and "`harness.py assess` has not been run" in text


def test_api_names_are_the_full_dotted_paths_of_every_framework_attribute_chain(tmp_path):
    from dlbench.analysis.assess import api_names

    src = tmp_path / "adapter.py"
    src.write_text(
        "import os\nimport torch\nimport jax.numpy as jnp\nfrom torch.nn import functional as F\n"
        "from flax import linen as nn\nimport mlx.core\n"
        "def f(model):\n"
        "    import keras\n"
        "    x = torch.nn.Linear(2, 3)(jnp.ones(3))\n"
        "    model.net.train()\n"  # an object's method: not a framework name
        "    os.path.join('a')\n"  # not a framework
        "    return F.cross_entropy(x, keras.ops.sum(x)), nn.Dense, mlx.core.eval, torch.__version__\n"
    )
    assert api_names(src) == {
        "torch.nn.Linear",
        "jax.numpy.ones",
        "torch.nn.functional.cross_entropy",
        "keras.ops.sum",
        "flax.linen.Dense",
        "mlx.core.eval",
        "torch.__version__",
    }


def test_an_api_check_tells_public_private_deprecated_missing_and_not_installed(tmp_path, monkeypatch):
    from dlbench.worker.apis import check

    (tmp_path / "fakefw").mkdir()
    (tmp_path / "fakefw" / "__init__.py").write_text(
        "import warnings\n__version__ = '1'\ndef public(): pass\ndef _hidden(): pass\n"
        "def __getattr__(name):\n"
        "    if name == 'old':\n"
        "        warnings.warn('old is deprecated', DeprecationWarning)\n"
        "        return 1\n"
        "    raise AttributeError(name)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    got = {n: check(n) for n in ("fakefw.public", "fakefw._hidden", "fakefw.__version__", "fakefw.old", "fakefw.nope")}
    assert got["fakefw.public"] == "public" and got["fakefw.__version__"] == "public"
    assert got["fakefw._hidden"] == "private" and got["fakefw.old"].startswith("deprecated: old is deprecated")
    assert got["fakefw.nope"].startswith("missing:") and check("surely_not_installed_pkg.x") == "not installed"

"""The text pipelines (dlbench/worker/pipelines.py): each framework's batches of raw reviews equal the reference
pipeline's (tasks.data.encode_review), tried on reviews made to catch them out, in the framework's own
interpreter; no real data needed."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from frameworks import ENVIRONMENTS, FRAMEWORKS
from tests.support.cli import ROOT

REVIEWS = [
    "This movie was GREAT!<br /><br />I loved it.",
    "word\x85joined by NEL; non\xa0breaking; thin\u2009space; ideographic\u3000space; form\x0cfeed",
    "",  # nothing at all: the start token, padded
    " ".join(f"w{i}" for i in range(200)),  # longer than 80 tokens: its end is kept
    "İstanbul ÉCOLE Straße ǅungla ΣΊΣΥΦΟΣ",  # case mappings beyond ASCII
    "tabs\tand\nnewlines\r\nand (parentheses) [brackets] {braces} 'quotes' \"double\" it's",
    "unknownwordnotinindex the the the",
    "#$%&*+,-./:;<=>?@\\^_`|~ only filters",
]
WORD_INDEX = {
    "the": 1,
    "this": 11,
    "movie": 17,
    "was": 13,
    "great": 84,
    "br": 7,
    "i": 10,
    "loved": 400,
    "it": 9,
    "word": 600,
    "joined": 19998,
    "by": 32,
    "space": 19996,
    "w5": 19997,
    "it's": 42,
    "and": 2,
    "straße": 5000,
    "i̇stanbul": 3000,
    "école": 3001,
    "σίσυφος": 3002,
    "ǆungla": 3003,
    "quotes": 50,
    "only": 61,
}


def _npz(tmp_path) -> str:
    raw = [r.encode("utf-8") for r in REVIEWS]
    path = tmp_path / "imdb_text.npz"
    np.savez(
        path,
        text_utf8=np.frombuffer(b"".join(raw), np.uint8),
        text_ends=np.cumsum([len(r) for r in raw]).astype(np.int64),
        y_train=np.zeros(len(raw), np.uint8),
        word_index_json=np.frombuffer(json.dumps(WORD_INDEX).encode(), np.uint8),
    )
    return str(path)


PIPELINES = sorted({(fw.pipeline, fw.env) for fw in FRAMEWORKS.values() if fw.pipeline})


@pytest.mark.slow  # every environment's interpreter: about 30 s
@pytest.mark.parametrize(("pipeline", "env"), PIPELINES, ids=[p for p, _ in PIPELINES])
def test_every_text_pipeline_encodes_hostile_reviews_as_the_reference_does(tmp_path, pipeline, env):
    python = ENVIRONMENTS[env].python
    if not python.exists():
        pytest.skip(f"{ENVIRONMENTS[env].venv} is not built here")
    r = subprocess.run(
        [str(python), "-m", "dlbench.worker.pipelines", "text", pipeline, _npz(tmp_path), "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["samples"] == len(REVIEWS) and got["differing_reviews"] == 0, got

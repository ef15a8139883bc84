"""The TFX pipeline (``pipelines/tfx_pipeline.py``), run for real by ``LocalDagRunner``, and its pushed
model served on raw tf.Examples: the crossed ids inside the model equal the core's (``Cross.apply``,
a bucketized hour included) on the same rows, for every row of the bundled sample.

TFX does not install next to the test dependencies (see README, "TFX"), so the pipeline runs in a
subprocess of the venv that ``.ci/tfx-env`` builds, named by ``BEAM_CROSS_TFX_PYTHON``::

    BEAM_CROSS_TFX_PYTHON="$(.ci/tfx-env)" python -m pytest tests/tft/test_tfx_pipeline.py

Without it the test is skipped, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from ci_venvs import venv_python

import beam_cross
from beam_cross import Cross, FeatureError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "beam_cross" / "data" / "sample_clicks.jsonl"
pytestmark = pytest.mark.slow  # a minute or two: the whole TFX pipeline, then serving

BUILD_COMMAND = 'BEAM_CROSS_TFX_PYTHON="$(.ci/tfx-env)" python -m pytest tests/tft/test_tfx_pipeline.py'


def _tfx_python() -> str:
    return venv_python("BEAM_CROSS_TFX_PYTHON", "TFX needs its own venv", BUILD_COMMAND)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """Runs the pipeline and the serving check once; returns the check's result."""
    python = _tfx_python()
    tmp = tmp_path_factory.mktemp("tfx")
    result_path = tmp / "result.json"
    (tmp / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),  # this checkout's beam_cross
        TMPDIR=str(tmp / "tmp"),  # TFX builds and installs user-code wheels in temp dirs it keeps
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    done = subprocess.run(
        [python, str(REPO / "tests" / "tft" / "tfx_pipeline_check.py"), str(tmp / "output"), str(result_path)],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=1200,
    )
    # Success is the result file, written last: a process that ran a tf.Transform pipeline can crash
    # in TensorFlow's teardown at interpreter exit (a negative return code, a signal) after its work
    # is done. A Python error (a positive code) or a missing result fails.
    if not result_path.exists() or done.returncode > 0:
        pytest.fail(f"The TFX pipeline failed (exit code {done.returncode}):\n{done.stderr[-6000:]}")
    result = json.loads(result_path.read_text())
    assert result["ok"] is True
    return result


def _sample_rows():
    return [json.loads(line) for line in SAMPLE.read_text().splitlines()]


def _rejected(summary):
    return [json.loads(line) for line in Path(summary["rejected"]).read_text().splitlines()]


def test_pipeline_accounts_for_every_row(pipeline_run):
    summary = pipeline_run["summary"]
    rows = _sample_rows()
    rejected = _rejected(summary)
    with open(summary["csv"]) as csv_file:
        csv_rows = sum(1 for _ in csv_file) - 1  # less the header
    assert summary["rows_read"] == len(rows) == 2500
    assert summary["rows_written"] == csv_rows
    assert summary["rows_rejected"] == len(rejected)
    assert csv_rows + len(rejected) == len(rows)
    # Every rejection is real: the core refuses that row, for the reason recorded.
    crosses = [Cross.from_dict(c) for c in summary["crosses"]]
    for record in rejected:
        row = {**record["row"], **{f: v for f, v in summary["defaults"].items() if record["row"].get(f) is None}}
        cross = next(c for c in crosses if c.name == record["cross"])
        with pytest.raises(FeatureError) as error:
            cross.apply({f: [row[f]] for f in cross.features})
        assert error.value.reason == record["reason"]
    assert {r["reason"] for r in rejected} == {"null", "float"}  # the sample's bad rows, both kinds


def test_served_ids_equal_hashed_cross_on_every_row(pipeline_run):
    summary = pipeline_run["summary"]
    crosses = [Cross.from_dict(c) for c in summary["crosses"]]
    assert set(pipeline_run["signatures"]) == {"serving_default", "transform_features"}
    rows = _sample_rows()
    rejected = {record["row"]["click_id"]: record for record in _rejected(summary)}
    kept = [r for r in rows if r["click_id"] not in rejected]
    # What the pipeline crosses: the documented default for a missing optional feature.
    filled = [{**r, **{f: v for f, v in summary["defaults"].items() if r.get(f) is None}} for r in kept]
    expected = {}
    for c in crosses:  # the core, transforms (the bucketized hour) included
        ids = c.apply({f: [r[f] for r in filled] for f in c.features})
        expected[c.name] = ids.to_pylist() if hasattr(ids, "to_pylist") else ids.tolist()  # a list per row if multivalent
    # The bucketized cross is crossed by the hour's bucket: the raw hour would give other ids.
    (bucketized,) = [c for c in crosses if any(c.transforms)]
    raw = beam_cross.hashed_cross({f: [r[f] for r in filled] for f in bucketized.features}, bucketized.num_bins)
    assert expected[bucketized.name] != raw.tolist()

    # Row by row: each kept row is served with the expected ids; each rejected row is refused.
    one_by_one = pipeline_run["one_by_one"]
    assert len(one_by_one) == len(rows)
    served = {c.name: [one_by_one[str(r["click_id"])]["ids"][c.name] for r in kept] for c in crosses}
    assert served == expected
    refused = {int(k): v["error"] for k, v in one_by_one.items() if "error" in v}
    assert set(refused) == set(rejected)
    for click_id, record in rejected.items():  # refused by tf.Example parsing, for the same feature
        assert re.search(rf"\b{record['feature']}\b", refused[click_id]), (record, refused[click_id])

    # As one batch, through both signatures.
    batch = pipeline_run["batch"]
    assert batch["click_ids"] == [r["click_id"] for r in kept]
    assert batch["ids"] == expected
    assert batch["probability_shape"] == [len(kept), 1]

    # Each embedding has a row per bin: the Trainer sized it from the domain in the transformed schema.
    shapes = pipeline_run["variable_shapes"]
    assert {c.name: shapes[f"embed_{c.name}/embeddings:0"][0] for c in crosses} == {c.name: c.num_bins for c in crosses}

    # The rows exercise what they claim: every sample row is counted, some devices are defaulted,
    # interests give no id, one or several ids.
    assert len(kept) == 2453 and len(rejected) == 47
    assert sum(1 for r in kept if r.get("device") is None) == 25
    assert {len(ids) for ids in expected["interests_X_country"]} == {0, 1, 2, 3, 4}

"""The command over the crosses ``from_feature_columns`` and ``from_feature_space`` import: a ``--config``
spec file written from their ``to_dict()`` crosses a Parquet file of the edge rows of
``tests/importer_oracle.py`` into the ids TF's feature columns and Keras' FeatureSpace give them (run in
a clean child process); the rows a feature column leaves without an id are the rejected rows, reason
``no_id``. One run per shape. FeatureSpace crosses are written in int mode (their one-hot encoding is
the command's own, tested elsewhere).
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_cross.job.run import run
from tests import importer_oracle as oracle


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return oracle.run_oracle(tmp_path_factory.mktemp("oracle"))


@pytest.mark.parametrize("name", ["wide", "space"])
def test_the_command_gives_the_ids_of_tf_and_keras(shapes, name, tmp_path):
    shape = shapes[name]
    crosses = [{**c, "output_mode": "int"} for c in shape["crosses"]]
    rows, expected = oracle.single_valued(shape)
    table = pa.table({"row_id": pa.array(range(len(rows)), pa.int64()), **{
        column: pa.array(values, pa.string() if isinstance(values[0], str) else
                         (pa.float64() if isinstance(values[0], float) else pa.int64()))
        for column, values in shape["rows"].items()}})
    pq.write_table(table, tmp_path / "rows.parquet")
    config = tmp_path / "crosses.json"
    config.write_text(json.dumps({"crosses": crosses}))
    output = tmp_path / "out"
    summary = run(["--input", str(tmp_path / "rows.parquet"), "--config", str(config), "--output", str(output),
                   "--no_chart"])
    dropped = [i for i, ids in enumerate(expected) if ids is None]
    assert (summary.rows_read, summary.rows_rejected) == (len(rows), len(dropped))
    assert (len(dropped) > 0) == (name == "wide")
    names = [c["name"] for c in crosses]
    got = {r["row_id"]: {n: r[n] for n in names} for p in sorted(glob.glob(f"{output}/crossed/*"))
           for r in pq.read_table(p).to_pylist()}
    assert got == {i: ids for i, ids in enumerate(expected) if ids is not None}
    rejected = [json.loads(line) for p in glob.glob(f"{output}/rejected/*") for line in Path(p).read_text().splitlines()]
    assert sorted(int(r["row"]["row_id"]) for r in rejected) == dropped
    assert {r["reason"] for r in rejected} <= {"no_id"}
    assert all(r["row"][r["feature"]] in ("", -1) for r in rejected)

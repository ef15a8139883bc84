"""The command crosses transformed columns: ``--config`` crosses with Bucketize / Lookup / Identity / Hash
(JSON and YAML, through ``Cross.from_dict``) and the short ``--cross 'bucketize(age:18,25),country:1000'``
on CSV and Parquet give the ids of ``tests/golden/transforms.json`` (made by TF's ``crossed_column`` and
Keras ``HashedCrossing`` over its preprocessors); a float column crossed raw is refused at plan time.

Inputs are written and outputs read back with independent code (the csv module, pyarrow).
"""

from __future__ import annotations

import csv
import glob
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from beam_cross import Cross, hashed_cross
from beam_cross.job.cli import main
from beam_cross.job.run import run
from tests.conftest import GOLDEN_DIR

VECTORS = {v["id"]: v for v in json.loads((GOLDEN_DIR / "transforms.json").read_text())["vectors"]}
CROSS_CASES = sorted(v["id"] for v in VECTORS.values() if "features" in v)
_ARROW = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "int32": pa.int32(), "str": pa.string()}


def _value(text, kind):
    if kind == "str":
        return text
    return float(text) if kind.startswith("float") else int(text)


def _golden_table(case) -> tuple[pa.Table, list[int]]:
    """The case's columns (typed as the generator gave them to TF) with a row id, and its golden ids."""
    columns = {"row_id": pa.array(range(len(case["expected"])), pa.int64())}
    for name, column in case["columns"].items():
        columns[name] = pa.array([_value(v, column["kind"]) for v in column["values"]], _ARROW[column["kind"]])
    return pa.table(columns), [int(ids[0]) for ids in case["expected"]]


def _write(table: pa.Table, fmt: str, path) -> str:
    if fmt == "parquet":
        pq.write_table(table, path)
        return str(path)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.column_names)
        # repr of a float round-trips (nan, inf, -0.0, 5e-324 too); a float32 as the shortest text of its value
        writer.writerows([repr(v) if isinstance(v, float) else str(v) for v in row.values()] for row in table.to_pylist())
    return str(path)


def _crossed(output, fmt: str, name: str) -> dict[int, int]:
    """row_id -> the crossed id, read back from the written files."""
    paths = sorted(glob.glob(f"{output}/crossed/*"))
    ids = {}
    for path in paths:
        if fmt == "parquet":
            for row in pq.read_table(path).to_pylist():
                ids[row["row_id"]] = row[name]
        else:
            with open(path, newline="", encoding="utf-8") as handle:
                ids.update({int(r["row_id"]): int(r[name]) for r in csv.DictReader(handle)})
    return ids


def _config(tmp_path, crosses, kind: str):
    path = tmp_path / f"crosses.{kind}"
    specs = [c.to_dict() for c in crosses]
    path.write_text(json.dumps({"crosses": specs}) if kind == "json" else yaml.safe_dump(specs))
    return str(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("case_id", CROSS_CASES)
def test_config_crosses_with_transforms_give_the_golden_ids(tmp_path, case_id, fmt):
    case = VECTORS[case_id]
    table, expected = _golden_table(case)
    cross = Cross.from_dict({"features": case["features"], "num_bins": case["num_bins"], "name": "crossed"})
    path = _write(table, fmt, tmp_path / f"rows.{fmt}")
    config = _config(tmp_path, [cross], "yaml" if fmt == "csv" else "json")
    output = tmp_path / "out"
    summary = run(["--input", path, "--config", config, "--output", str(output), "--no_chart"])
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (len(expected), len(expected), 0)
    assert _crossed(output, fmt, "crossed") == dict(enumerate(expected))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_short_cross_form_bucketizes_every_float_edge(tmp_path, fmt):
    """Keras Discretization's golden bucket ids of -inf, NaN, -0.0, 1e+39, 5e-324, ... (float64 read
    from the file), crossed with a string column: the cross of those ids."""
    vector = VECTORS["bucketize_b0_float64"]
    pairs = [(float(v), int(b)) for v, b in zip(vector["column"]["values"], vector["expected"])]
    if fmt == "csv":  # the CSV reader takes a `nan` cell for a null (Arrow's null spellings): NaN through Parquet only
        pairs = [(v, b) for v, b in pairs if not math.isnan(v)]
    values, buckets = [v for v, _ in pairs], [b for _, b in pairs]
    countries = [("fr", "us", "é")[i % 3] for i in range(len(values))]
    table = pa.table({"row_id": pa.array(range(len(values)), pa.int64()), "x": pa.array(values, pa.float64()),
                      "country": countries})
    expected = hashed_cross({"x": buckets, "country": countries}, 1000).tolist()  # the golden ids, crossed
    boundaries = ",".join(repr(b) for b in vector["transform"]["boundaries"])
    output = tmp_path / "out"
    summary = run(["--input", _write(table, fmt, tmp_path / f"rows.{fmt}"), "--cross",
                   f"bucketize(x:{boundaries}),country:1000", "--output", str(output), "--no_chart"])
    assert summary.rows_crossed == len(values) and (fmt == "csv" or any(math.isnan(v) for v in values))
    assert _crossed(output, fmt, "x_X_country") == dict(enumerate(expected))


def test_the_output_schema_types_a_transformed_cross_as_int(tmp_path):
    table, expected = _golden_table(VECTORS["feature_space_age_x_sex"])
    cross = Cross.from_dict({**{k: VECTORS["feature_space_age_x_sex"][k] for k in ("features", "num_bins")}, "name": "c"})
    output = tmp_path / "out"
    run(["--input", _write(table, "parquet", tmp_path / "rows.parquet"), "--config", _config(tmp_path, [cross], "yaml"),
         "--output", str(output), "--no_chart"])
    (path,) = glob.glob(f"{output}/crossed/*")
    written = pq.read_table(path)
    assert written.schema.field("c").type == pa.int64() and written.schema.field("age").type == pa.float32()
    assert written.column("c").to_pylist() == expected


def test_rows_a_transform_cannot_take_are_rejected_with_their_reason(tmp_path):
    """A Lookup without OOV ids rejects an unknown token's row (reason oov), as CrossFeatures does."""
    case = VECTORS["feature_space_age_x_sex"]
    table, expected = _golden_table(case)
    strict = [case["features"][0], {**case["features"][1], "num_oov_indices": 0}]
    cross = Cross.from_dict({"features": strict, "num_bins": case["num_bins"], "name": "c"})
    output = tmp_path / "out"
    summary = run(["--input", _write(table, "csv", tmp_path / "rows.csv"), "--config", _config(tmp_path, [cross], "json"),
                   "--output", str(output), "--no_chart"])
    others = [i for i, sex in enumerate(table.column("sex").to_pylist()) if sex not in ("male", "female")]
    assert summary.rows_rejected == len(others) > 0
    rejected = [json.loads(line) for p in glob.glob(f"{output}/rejected/*") for line in Path(p).read_text().splitlines()]
    assert sorted(int(r["row"]["row_id"]) for r in rejected) == others
    assert {(r["reason"], r["feature"], r["cross"]) for r in rejected} == {("oov", "sex", "c")}
    assert all("Feature `sex` of cross `c`" in r["message"] and "'other'" in r["message"] for r in rejected)
    kept = [i for i in range(len(expected)) if i not in others]
    rows = table.take(kept)
    want = cross.apply({"age": rows.column("age"), "sex": rows.column("sex")}).tolist()  # the core, tested on the golden ids
    assert _crossed(output, "csv", "c") == dict(zip(kept, want))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_float_column_crossed_raw_is_refused_with_the_bucketize_forms(tmp_path, capsys, fmt):
    table, _ = _golden_table(VECTORS["crossed_column_bucketized_x_raw"])
    path = _write(table, fmt, tmp_path / f"rows.{fmt}")
    assert main(["--input", path, "--cross", "age,country:1000", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Cross `age_X_country` crosses the float column `age` as it is" in err
    assert "{transform: bucketize, name: age, boundaries: [...]}" in err and "bucketize(age:B1,B2,...)" in err


def test_a_one_hot_cross_of_zero_bins_is_refused_by_the_spec(tmp_path, capsys):
    path = _write(_golden_table(VECTORS["crossed_column_bucketized_x_raw"])[0], "csv", tmp_path / "rows.csv")
    config = tmp_path / "c.yaml"
    config.write_text("- {features: [country, row_id], num_bins: 0, output_mode: one_hot}\n")
    assert main(["--input", path, "--config", str(config), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "A one_hot cross needs `num_bins` >= 1" in err and "num_bins=0 for cross `country_X_row_id`" in err
    assert "list_size" not in err and not (tmp_path / "out" / "_MANIFEST.json").exists()

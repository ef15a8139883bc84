"""Beam YAML: the ``CrossFeatures`` provider shipped in the package, run by Beam's own YAML runner.

docs/beam.md's pipeline runs through ``python -m apache_beam.yaml.main`` (offline, local runner) on a CSV
with bad rows; every row is checked: crossed ids equal ``beam_cross.hashed_cross`` (itself checked
against TensorFlow in ``test_cross.py``), bad rows are in the error sink, and no row is lost.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import apache_beam as beam
import pytest
import yaml
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.typehints.row_type import RowTypeConstraint

import beam_cross
from beam_cross import Cross, FeatureError, hashed_cross
from tests.conftest import GOLDEN_DIR

yaml_transform = pytest.importorskip("apache_beam.yaml.yaml_transform", reason="needs apache-beam[yaml]")

from apache_beam.yaml import yaml_provider  # noqa: E402  (after the importorskip above)

from beam_cross.beam.yaml_transforms import (  # noqa: E402
    YamlCrossFeatures,
    _to_cross,
    config_schema,
    feature_schema,
    main,
    provider_path,
)
from beam_cross.core.transforms import TRANSFORMS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COUNTRIES = ["fr", "us", "de", "日本", "", "x" * 40]
DEVICES = ["ios", "android", "", "web"]


def readme_yaml() -> str:
    """docs/beam.md's Beam YAML pipeline (the yaml block that uses ``type: CrossFeatures``)."""
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "beam.md").read_text(), flags=re.S)
    (block,) = [b for b in blocks if "type: CrossFeatures" in b]
    return block


def readme_command() -> str:
    (command,) = re.findall(r"\n(python -m apache_beam\.yaml\.main .*?)\n```\n", (REPO / "docs" / "beam.md").read_text(), re.S)
    return command


def write_clicks(path: Path, n: int) -> list[dict]:
    """A CSV like docs/beam.md's, with a row id; an empty cell is a null (a bad row for a cross using it)."""
    rows = [{"row_id": i, "country": COUNTRIES[i % 6], "hour": (i * 7) % 24, "device": DEVICES[(i // 3) % 4]}
            for i in range(n)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["row_id", "country", "hour", "device"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_jsonl(pattern_dir: Path, prefix: str) -> list[dict]:
    return [json.loads(line) for path in sorted(pattern_dir.glob(prefix + "*"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_readme_pipeline_runs_in_beams_yaml_runner_and_keeps_every_row(tmp_path):
    n = 600
    rows = write_clicks(tmp_path / "clicks.csv", n)
    (tmp_path / "cross_clicks.yaml").write_text(readme_yaml())
    # docs/beam.md's command, as a shell would run it, on the local runner (no Prism download).
    command = readme_command().replace("\\\n", " ") + " --runner=FnApiRunner"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]

    crossed = read_jsonl(tmp_path / "out", "crossed.jsonl")
    errors = read_jsonl(tmp_path / "out", "errors.jsonl")
    # Empty CSV cells are nulls: a row with one in a crossed feature is rejected.
    good = [r for r in rows if r["country"] and r["device"]]
    bad = [r for r in rows if not (r["country"] and r["device"])]
    assert good and bad
    assert len(crossed) + len(errors) == n, f"rows lost: {n - len(crossed) - len(errors)} of {n}"

    expected = {
        r["row_id"]: {**r, "country_X_hour": a, "device_X_country": b}
        for r, a, b in zip(
            good,
            hashed_cross([[r["country"] for r in good], [r["hour"] for r in good]], 1000).tolist(),
            hashed_cross([[r["device"] for r in good], [r["country"] for r in good]], 100).tolist(),
        )
    }
    assert {r["row_id"]: r for r in crossed} == expected
    assert len(crossed) == len(expected)

    # Beam's error format: the bad row (written by WriteToJson as its values, in column order), the
    # message naming the feature, the cross and the value, and the error's type with its reason.
    columns = ["row_id", "country", "hour", "device"]
    got_bad = {e["element"][0]: e for e in errors}
    assert len(got_bad) == len(errors) == len(bad)
    for row in bad:
        error = got_bad[row["row_id"]]
        assert set(error) == {"element", "msg", "stack"}
        assert error["element"] == [None if row[c] == "" else row[c] for c in columns]
        feature, cross = ("country", "country_X_hour") if not row["country"] else ("device", "device_X_country")
        assert error["msg"] == (f"Feature `{feature}` of cross `{cross}`: missing values (None) cannot be crossed; "
                                "fill or filter them first. Received: value=None")
        assert error["stack"] == f"beam_cross.FeatureError(reason='null', feature='{feature}', cross='{cross}')"


def _yaml_pipeline(spec: str, inputs):
    return inputs | yaml_transform.YamlTransform(spec, providers=yaml_provider.load_providers(provider_path()))


MULTIVALENT_SPEC = """
type: composite
input: input
transforms:
  - type: CrossFeatures
    name: Cross
    input: input
    config:
      crosses:
        - {features: [tags, hour], num_bins: 50, hash_key: 7}
        - {features: [country, hour], num_bins: 4, name: one_hot, output_mode: one_hot}
      keep_inputs: false
      error_handling: {output: bad}
output:
  good: Cross
  bad: Cross.bad
"""


def test_multivalent_and_one_hot_crosses_on_schemad_rows():
    rows = [beam.Row(id=i, country=["fr", "us", "de"][i % 3], hour=i, tags=[["a", "b"], [], ["c"]][i % 3])
            for i in range(12)]
    tags_ids = hashed_cross([[r.tags for r in rows], [r.hour for r in rows]], 50, hash_key=7).to_pylist()
    one_hot_ids = hashed_cross([[r.country for r in rows], [r.hour for r in rows]], 4).tolist()
    expected = [(r.id, t, [int(j == b) for j in range(4)]) for r, t, b in zip(rows, tags_ids, one_hot_ids)]
    row_type = RowTypeConstraint.from_fields(
        [("id", int), ("country", str), ("hour", int), ("tags", typing.Sequence[str])])
    with beam.Pipeline("FnApiRunner") as p:
        out = _yaml_pipeline(MULTIVALENT_SPEC, p | beam.Create(rows).with_output_types(row_type))
        assert_that(out["good"] | beam.Map(lambda r: (r.id, list(r.tags_X_hour), list(r.one_hot))),
                    equal_to(expected), label="good")
        assert_that(out["good"] | "fields" >> beam.Map(lambda r: sorted(r._asdict())),
                    equal_to([["id", "one_hot", "tags_X_hour"]] * len(rows)), label="fields")
        assert_that(out["bad"], equal_to([]), label="bad")


def test_errors_are_in_beams_standard_format_strip_error_metadata_recovers_the_rows():
    spec = """
type: composite
input: input
transforms:
  - type: CrossFeatures
    name: Cross
    input: input
    config:
      crosses: [{features: [country, hour], num_bins: 10}]
      error_handling: {output: errors}
  - type: StripErrorMetadata
    input: Cross.errors
output:
  good: Cross
  bad: StripErrorMetadata
"""
    row_type = RowTypeConstraint.from_fields([("country", typing.Optional[str]), ("hour", int)])  # noqa: UP045 (Beam schemas)
    rows = [beam.Row(country="fr", hour=1), beam.Row(country=None, hour=2), beam.Row(country="us", hour=3)]
    ids = hashed_cross([["fr", "us"], [1, 3]], 10).tolist()
    with beam.Pipeline("FnApiRunner") as p:
        out = _yaml_pipeline(spec, p | beam.Create(rows).with_output_types(row_type))
        assert_that(out["good"] | beam.Map(lambda r: (r.country, r.hour, r.country_X_hour)),
                    equal_to([("fr", 1, ids[0]), ("us", 3, ids[1])]), label="good")
        assert_that(out["bad"] | beam.Map(lambda r: (r.country, r.hour)), equal_to([(None, 2)]), label="bad")


def test_without_error_handling_a_bad_row_fails_the_pipeline():
    spec = """
type: chain
transforms:
  - type: CrossFeatures
    config:
      crosses: [{features: [country, hour], num_bins: 10}]
"""
    expected = r"Feature `country` of cross `country_X_hour`: missing values \(None\) cannot be crossed"
    with pytest.raises(Exception, match=expected), beam.Pipeline("FnApiRunner") as p:
        _ = _yaml_pipeline(spec, p | beam.Create([beam.Row(country="fr", hour=1), beam.Row(country=None, hour=2)]))


def test_config_schema_is_typed_and_documented():
    schema = config_schema()
    crosses = schema["properties"]["crosses"]
    assert crosses["type"] == "array"
    assert crosses["items"]["properties"] == {
        "features": {"type": "array", "minItems": 2, "items": feature_schema(),
                     "description": "The features, in order: each a field name or a transform of a field."},
        "num_bins": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "output_mode": {"type": ["string", "null"], "enum": ["int", "one_hot", None]},
        "hash_key": {"type": ["integer", "null"]},
    }
    assert feature_schema()["oneOf"][0]["type"] == "string"
    assert [s["properties"]["transform"]["const"] for s in feature_schema()["oneOf"][1:]] == list(TRANSFORMS)
    assert schema["properties"]["engine"]["enum"] == ["numpy", "tensorflow"]
    assert schema["properties"]["feature_types"]["additionalProperties"] == {"type": "string", "enum": ["string", "int"]}
    assert crosses["items"]["required"] == ["features", "num_bins"]
    assert schema["required"] == ["crosses"]
    assert schema["properties"]["keep_inputs"]["type"] == "boolean"
    assert schema["properties"]["error_handling"]["properties"] == {"output": {"type": "string"}}
    assert crosses["description"].startswith("The crosses to compute. Each is a mapping with `features`")
    assert all(p.get("description") for p in schema["properties"].values())
    # docs/beam.md's config is valid under it, and a misspelt key or a bad output_mode is not.
    jsonschema = pytest.importorskip("jsonschema", reason="part of apache-beam[yaml]")
    (spec,) = [t for t in yaml.safe_load(readme_yaml())["pipeline"]["transforms"] if t["type"] == "CrossFeatures"]
    jsonschema.validate(spec["config"], schema)
    for bad in ({**spec["config"], "keep_input": False},
                {"crosses": [{"features": ["a", "b"], "num_bins": 3, "output_mode": "multi_hot"}]},
                {"crosses": [{"features": ["a", "b"]}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    # Beam YAML's own reading of the provider: the same schema and the docstring's summary.
    (provider,) = yaml_provider.load_providers(provider_path())
    assert [f.name for f in provider.config_schema("CrossFeatures").fields] == list(schema["properties"])
    assert provider.description("CrossFeatures").startswith("Adds one hashed-cross field per cross to every row")


def test_provider_path_command_prints_the_shipped_listing(capsys):
    assert main(["--provider-path"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == provider_path() and Path(path).is_file()
    assert main(["--schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()
    assert main(["--nope"]) == 2


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"crosses": {"features": ["a", "b"], "num_bins": 3}}, TypeError, r"`crosses` must be a list of crosses"),
    ({"crosses": ["a_X_b"]}, TypeError, r"Each entry of `crosses` must be a mapping .* Received: 'a_X_b'"),
    ({"crosses": [{"features": ["a", "b"]}]}, ValueError, r"needs `features` and `num_bins`"),
    ({"crosses": [{"features": ["a", "b"], "num_bins": 3}], "error_handling": {"output": ""}}, ValueError,
     r"`error_handling` must be a mapping with one key, `output`"),
    ({"crosses": [{"features": ["a", "b"], "num_bins": 3}], "error_handling": {"output": "e", "x": 1}}, ValueError,
     r"Received: error_handling=\{'output': 'e', 'x': 1\}"),
    ({"crosses": [{"features": ["a", "b"], "num_bins": 3}], "engine": "torch"}, ValueError, r"`engine` must be one of"),
])
def test_bad_config_is_refused_when_the_pipeline_is_built(kwargs, error, match):
    with pytest.raises(error, match=match):
        YamlCrossFeatures(**kwargs)


def test_null_optional_keys_mean_the_defaults():
    transform = YamlCrossFeatures([{"features": ["a", "b"], "num_bins": 3, "name": None, "output_mode": None,
                                    "hash_key": None}], batch_size=None, engine=None)
    assert transform._cross_features.crosses == (Cross(["a", "b"], 3),)


GOLDEN_CROSSES = [c for c in json.loads((GOLDEN_DIR / "transforms.json").read_text())["vectors"]
                  if "features" in c]


def _golden_rows_and_crosses():
    """The rows of every golden cross case (they share their columns), and each case's cross (named after
    its id) with the ids TensorFlow / Keras gave it."""
    columns = {}
    for case in GOLDEN_CROSSES:
        for name, column in case["columns"].items():
            convert = str if column["kind"] == "str" else float if column["kind"].startswith("float") else int
            values = [convert(v) for v in column["values"]]
            assert columns.setdefault(name, values) == values, f"golden column {name} differs between cases"
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    crosses = {case["id"]: (Cross.from_dict({"features": case["features"], "num_bins": case["num_bins"],
                                             "name": case["id"]}), [int(row[0]) for row in case["expected"]])
               for case in GOLDEN_CROSSES}
    return rows, crosses


def _transform_spec(crosses, error_output=None) -> str:
    """A composite running CrossFeatures over ``crosses`` written as ``Cross.to_dict()`` writes them."""
    config = {"crosses": [c.to_dict() for c in crosses]}
    if error_output:
        config["error_handling"] = {"output": error_output}
    spec = {"type": "composite", "input": "input",
            "transforms": [{"type": "CrossFeatures", "name": "Cross", "input": "input", "config": config}],
            "output": {"good": "Cross", **({"bad": f"Cross.{error_output}"} if error_output else {})}}
    return yaml.safe_dump(spec, sort_keys=False)


def test_crosses_of_transformed_features_give_the_ids_of_tensorflow():
    rows, crosses = _golden_rows_and_crosses()
    kinds = {type(t).__name__ for c, _ in crosses.values() for t in c.transforms if t is not None}
    assert {"Bucketize", "Lookup"} <= kinds
    spec = _transform_spec([c for c, _ in crosses.values()], error_output="bad")
    assert "transform: bucketize" in spec and "transform: lookup" in spec  # the features are mappings in the YAML
    for cross, expected in crosses.values():  # the golden ids are Cross.apply's too
        assert cross.apply({k: [r[k] for r in rows] for k in rows[0]}).tolist() == expected
    expected = [(i, *(ids[i] for _, ids in crosses.values())) for i in range(len(rows))]
    names = list(crosses)
    with beam.Pipeline("FnApiRunner") as p:
        out = _yaml_pipeline(spec, p | beam.Create([beam.Row(row_id=i, **r) for i, r in enumerate(rows)]))
        assert_that(out["good"] | beam.Map(lambda r: (r.row_id, *(getattr(r, n) for n in names))),
                    equal_to(expected), label="good")
        assert_that(out["bad"], equal_to([]), label="bad")


def test_a_string_into_a_bucketize_goes_to_the_errors_output_with_its_reason():
    rows, crosses = _golden_rows_and_crosses()
    cross, expected = crosses["crossed_column_bucketized_x_raw"]
    bad_ages = {3: "x", 7: "35.2"}  # strings, even one that reads as a number
    given = [beam.Row(row_id=i, age=bad_ages.get(i, r["age"]), country=r["country"]) for i, r in enumerate(rows)]
    reasons = {}
    for i, age in bad_ages.items():
        with pytest.raises(FeatureError) as caught:
            cross.apply({"age": [age], "country": [rows[i]["country"]]})
        reasons[i] = (caught.value.reason, str(caught.value).split(": ", 1)[1].rsplit(" at row ", 1)[0])
    assert {reason for reason, _ in reasons.values()} == {"wrong_kind"}
    spec = _transform_spec([cross], error_output="errors")
    with beam.Pipeline("FnApiRunner") as p:
        out = _yaml_pipeline(spec, p | beam.Create(given))
        assert_that(out["good"] | beam.Map(lambda r: (r.row_id, r.crossed_column_bucketized_x_raw)),
                    equal_to([(i, e) for i, e in enumerate(expected) if i not in bad_ages]), label="good")
        assert_that(out["bad"] | beam.Map(lambda e: (e.element.row_id, e.element.age, e.msg, e.stack)), equal_to([
            (i, age, f"Feature `age` of cross `{cross.name}`: {reasons[i][1]}",
             f"beam_cross.FeatureError(reason={reasons[i][0]!r}, feature='age', cross={cross.name!r})")
            for i, age in bad_ages.items()]), label="bad")


def test_config_schema_takes_the_crosses_cross_to_dict_writes():
    jsonschema = pytest.importorskip("jsonschema", reason="part of apache-beam[yaml]")
    _, crosses = _golden_rows_and_crosses()
    schema = config_schema()
    every = [Cross([beam_cross.Identity("hour", 24), beam_cross.Hash("city", 10), "country"], 5, hash_key=3)]
    every += [c for c, _ in crosses.values()]
    config = {"crosses": [c.to_dict() for c in every]}
    jsonschema.validate(config, schema)
    assert [_to_cross(d) for d in config["crosses"]] == every
    feature = schema["properties"]["crosses"]["items"]["properties"]["features"]
    assert feature["description"] == "The features, in order: each a field name or a transform of a field."
    for bad in ({"transform": "bucketize", "name": "age"},                       # no boundaries
                {"transform": "bucketize", "name": "age", "boundaries": ["a"]},
                {"transform": "lookup", "name": "country", "vocabulary": ["fr"], "style": "tf"},
                {"transform": "hash", "name": "city", "num_bins": 0},
                {"transform": "hash", "name": "city", "num_bins": 3, "salt": 1},  # not a Hash option
                {"transform": "scale", "name": "x"}, {"name": "x"}, "", 3):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"crosses": [{"features": [bad, "country"], "num_bins": 3}]}, schema)


def test_transform_features_given_as_rows_are_read_as_their_mappings():
    # How a config reaches the constructor through a schema'd payload: Rows all the way down.
    bucketize = beam_cross.Bucketize("age", [18, 25])
    config = beam.Row(features=[beam.Row(**bucketize.to_dict()), "country"], num_bins=10, name=None,
                      output_mode=None, hash_key=None)
    assert YamlCrossFeatures([config])._cross_features.crosses == (Cross([bucketize, "country"], 10),)

"""beam_cross.tft: the preprocessing_fn mapper against TF's golden vectors, and the TFX module file
run as TFX's Transform executor runs it (tf.Examples -> TFXIO -> AnalyzeAndTransformDataset ->
WriteTransformFn), with its schema domains and collision report checked by brute force.

tensorflow_transform is imported inside the tests (it sets TF_USE_LEGACY_KERAS=1 on import), so
collecting this module does not change the Keras world of other test modules.
"""

from __future__ import annotations

import glob
import importlib.util
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf  # tensorflow alone leaves the Keras world as it is

from beam_cross import Cross, hashed_cross

MODULE_FILE = Path(__file__).resolve().parents[2] / "pipelines" / "tfx_module.py"
_DTYPES = {"str": tf.string, "bytes": tf.string, "int8": tf.int8, "int16": tf.int16, "int32": tf.int32,
           "int64": tf.int64, "uint8": tf.uint8, "uint16": tf.uint16, "uint32": tf.uint32, "uint64": tf.uint64}


def _bc_tft():
    import beam_cross.tft

    return beam_cross.tft


def _flat_tensor(kind, values):
    if kind in ("str", "bytes"):
        return tf.constant(np.array(values, dtype=object), tf.string)
    return tf.constant(np.array(values, dtype=_DTYPES[kind].as_numpy_dtype), _DTYPES[kind])


def _golden_tensor(column, ragged_kind):
    if column["dense"]:
        return _flat_tensor(column["kind"], column["values"])
    lengths = [len(row) for row in column["values"]]
    flat = _flat_tensor(column["kind"], [v for row in column["values"] for v in row])
    ragged = tf.RaggedTensor.from_row_lengths(flat, tf.constant(lengths, tf.int64))
    return ragged if ragged_kind == "ragged" else ragged.to_sparse()


def test_dense_golden_vectors(dense_case):
    bc_tft = _bc_tft()
    inputs = [tf.reshape(_golden_tensor(c, None), dense_case["shape"]) for c in dense_case["columns"]]
    if dense_case["shape"] == ():
        with pytest.raises(ValueError, match="shape"):  # a preprocessing_fn always sees a batch
            bc_tft.hashed_cross(inputs, dense_case["num_bins"], hash_key=dense_case["hash_key"])
        return
    ids = bc_tft.hashed_cross(inputs, dense_case["num_bins"], hash_key=dense_case["hash_key"])
    assert isinstance(ids, tf.Tensor) and ids.dtype == tf.int64
    np.testing.assert_array_equal(ids.numpy(), dense_case["expected"])


@pytest.mark.parametrize("ragged_kind", ["ragged", "sparse"])
def test_multivalent_golden_vectors(ragged_case, ragged_kind):
    """Sparse and ragged inputs, mixed with dense ones in any position: the given order is kept."""
    bc_tft = _bc_tft()
    inputs = [_golden_tensor(c, ragged_kind) for c in ragged_case["columns"]]
    ids = bc_tft.hashed_cross(inputs, ragged_case["num_bins"], hash_key=ragged_case["hash_key"])
    if ragged_kind == "ragged":
        assert isinstance(ids, tf.RaggedTensor)
        got = ids.to_list()
    else:
        assert isinstance(ids, tf.SparseTensor)
        got = tf.RaggedTensor.from_sparse(ids).to_list()
    assert got == ragged_case["expected"]


def test_dense_then_sparse_keeps_the_given_order():
    """tf.sparse.cross_hashed would hash (sparse, dense); beam_cross keeps (dense, sparse)."""
    bc_tft = _bc_tft()
    hours = tf.constant([13, 7], tf.int64)
    tags = tf.RaggedTensor.from_row_lengths(tf.constant(["a", "b", "c"]), [2, 1])
    ids = bc_tft.hashed_cross([hours, tags.to_sparse()], 1000)
    assert tf.RaggedTensor.from_sparse(ids).to_list() == hashed_cross([[13, 7], [["a", "b"], ["c"]]], 1000).to_pylist()
    swapped = tf.sparse.cross_hashed([tf.reshape(hours, [-1, 1]), tags.to_sparse()], 1000)
    assert tf.RaggedTensor.from_sparse(swapped).to_list() == hashed_cross([[["a", "b"], ["c"]], [13, 7]], 1000).to_pylist()


def test_dense_output_keeps_the_first_input_shape():
    """(batch,) and (batch, 1) mix (FixedLenFeature([]) and [1] both occur in tf.Transform)."""
    bc_tft = _bc_tft()
    ids = bc_tft.hashed_cross([tf.constant([["fr"], ["us"]]), tf.constant([13, 7])], 1000)
    assert ids.shape == (2, 1)
    np.testing.assert_array_equal(ids.numpy(), hashed_cross([np.array([["fr"], ["us"]]), np.array([[13], [7]])], 1000))


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        (lambda: tf.constant(["a"]), TypeError, "list or tuple"),
        (lambda: [tf.constant(["a"])], ValueError, "at least two"),
        (lambda: [tf.constant(["a"]), tf.constant([1.5])], TypeError, "dtype=float32"),
        (lambda: [tf.constant(["a"]), tf.constant([True])], TypeError, "dtype=bool"),
        (lambda: [tf.constant(["a"]), tf.constant([[1, 2]])], ValueError, r"shape=\(1, 2\)"),
        (lambda: [tf.constant(["a"]), [1]], TypeError, "inputs\\[1\\]"),
    ],
)
def test_bad_inputs_are_rejected(inputs, error, match):
    with pytest.raises(error, match=match):
        _bc_tft().hashed_cross(inputs(), 10)


def test_bad_num_bins_is_rejected():
    with pytest.raises(ValueError, match="num_bins=-1"):
        _bc_tft().hashed_cross([tf.constant(["a"]), tf.constant([1])], -1)


def test_make_preprocessing_fn_rejects_bad_config():
    bc_tft = _bc_tft()
    with pytest.raises(ValueError, match="one_hot"):
        bc_tft.make_preprocessing_fn([Cross(["a", "b"], 10, output_mode="one_hot")])
    with pytest.raises(ValueError, match="name of a cross output"):
        bc_tft.make_preprocessing_fn([Cross(["a", "b"], 10, name="label")], passthrough=["label"])
    with pytest.raises(TypeError, match="default of feature `a`"):
        bc_tft.make_preprocessing_fn([Cross(["a", "b"], 10)], defaults={"a": 1.5})


def test_preprocessing_fn_names_missing_inputs():
    fn = _bc_tft().make_preprocessing_fn([Cross(["a", "b"], 10)], passthrough=["label"], defaults={"c": "x"})
    with pytest.raises(KeyError, match=r"needs features \['c', 'label'\]"):
        fn({"a": tf.constant(["x"]), "b": tf.constant([1])})


def test_any_cross_name_works_as_an_op_scope():
    fn = _bc_tft().make_preprocessing_fn([Cross(["país", "hour"], 10, name="_país × hora")])
    ids = fn({"país": tf.constant(["fr", "us"]), "hour": tf.constant([13, 7])})["_país × hora"]
    np.testing.assert_array_equal(ids.numpy(), hashed_cross([["fr", "us"], [13, 7]], 10))


def test_default_for_a_multivalued_row_fails_loudly():
    """A feature given a default is single-valued: two values in a row are an error, not a truncation."""
    fn = _bc_tft().make_preprocessing_fn([Cross(["device", "hour"], 10)], defaults={"device": "unknown"})
    device = tf.RaggedTensor.from_row_lengths(tf.constant(["ios", "web"]), [2]).to_sparse()
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most one value per row"):
        fn({"device": device, "hour": tf.constant([1], tf.int64)})


# -- the TFX module file, run as the Transform executor runs it ------------------------------------

CROSSES = [Cross(["country", "hour"], 7), Cross(["device", "hour"], 5), Cross(["tags", "country"], 11)]
TARGET = 0.05


def _rows():
    countries, devices, tags = ["fr", "us", "de", "jp", "br"], ["ios", "web", "android", None], ["a", "b", "c", "d"]
    rows = []
    for i in range(40):
        rows.append({
            "country": countries[i % 5],
            "hour": (i * 7) % 6,
            "device": devices[(i // 3) % 4],  # None: a missing value
            "tags": [tags[(i + k) % 4] for k in range(i % 3)],  # [] for every third row
            "label": i % 2,
        })
    return rows


def _expected_columns(rows):
    """The inputs as the documented missing-value rules make them: device defaulted, tags as lists."""
    return {
        "country": [r["country"] for r in rows],
        "hour": [r["hour"] for r in rows],
        "device": [r["device"] if r["device"] is not None else "unknown" for r in rows],
        "tags": [r["tags"] for r in rows],
    }


def load_module_file():
    """Loads the module file by path, as TFX does with ``module_file``."""
    spec = importlib.util.spec_from_file_location("beam_cross_tfx_module", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def module_run(tmp_path_factory):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline

    module = load_module_file()
    work = tmp_path_factory.mktemp("tfx_module")
    rows = _rows()
    module.write_examples(rows, str(work / "examples.tfrecord"))
    config = {"crosses": [c.to_dict() for c in CROSSES], "collision_stats": True, "target_collision_share": TARGET}
    with TestPipeline(runner="FnApiRunner") as pipeline:
        module.transform_examples(
            pipeline, str(work / "*.tfrecord"), str(work / "out"), custom_config=config, temp_dir=str(work / "tmp")
        )
    _ = beam  # the pipeline above needs Beam imported; keep the import explicit
    return rows, str(work / "out")


def _transformed_rows(out):
    import tensorflow_transform as tft

    spec = tft.TFTransformOutput(out).transformed_feature_spec()
    files = glob.glob(os.path.join(out, "transformed_examples-*.tfrecord"))
    rows = []
    for record in tf.data.TFRecordDataset(files):
        parsed = tf.io.parse_single_example(record, spec)
        rows.append({k: (tf.sparse.to_dense(v).numpy().tolist() if isinstance(v, tf.SparseTensor) else int(v))
                     for k, v in parsed.items()})
    return rows


def test_module_file_ids_equal_the_core(module_run):
    rows, out = module_run
    columns = _expected_columns(rows)
    transformed = _transformed_rows(out)
    assert len(transformed) == len(rows)  # no row dropped, missing values included
    expected = [
        {
            "country_X_hour": a,
            "device_X_hour": b,
            "tags_X_country": c,
            "label": r["label"],
        }
        for r, a, b, c in zip(
            rows,
            hashed_cross([columns["country"], columns["hour"]], 7).tolist(),
            hashed_cross([columns["device"], columns["hour"]], 5).tolist(),
            hashed_cross([columns["tags"], columns["country"]], 11).to_pylist(),
        )
    ]
    key = lambda row: (row["label"], row["country_X_hour"], row["device_X_hour"], row["tags_X_country"])  # noqa: E731
    assert sorted(transformed, key=key) == sorted(expected, key=key)
    assert any(row["tags_X_country"] == [] for row in transformed)  # the empty-tags rows are there


def test_module_file_schema_carries_the_domain(module_run):
    import tensorflow_transform as tft

    _, out = module_run
    output = tft.TFTransformOutput(out)
    for cross in CROSSES:
        assert output.num_buckets_for_transformed_feature(cross.name) == cross.num_bins
    domains = output.transformed_domains()
    assert (domains["tags_X_country"].min, domains["tags_X_country"].max) == (0, 10)
    assert isinstance(output.transformed_feature_spec()["tags_X_country"], tf.io.VarLenFeature)


def _brute_force(cross, columns):
    """Collision figures by plain counting over the raw values (no hash used to tell crosses apart)."""
    bins = hashed_cross([columns[f] for f in cross.features], cross.num_bins)
    pairs = []  # (raw value combination, bin), one per cross value
    for row, row_bins in enumerate(bins.to_pylist() if hasattr(bins, "to_pylist") else bins.tolist()):
        values = [columns[f][row] if isinstance(columns[f][row], list) else [columns[f][row]] for f in cross.features]
        combos = [()]
        for options in values:
            combos = [c + (v,) for c in combos for v in options]
        row_bins = row_bins if isinstance(row_bins, list) else [row_bins]
        assert len(combos) == len(row_bins)
        pairs += list(zip(combos, row_bins))
    crosses_in_bin = defaultdict(set)
    for combo, b in pairs:
        crosses_in_bin[b].add(combo)
    distinct = len({combo for combo, _ in pairs})
    colliding_values = sum(1 for _, b in pairs if len(crosses_in_bin[b]) > 1)
    m = 1
    while 1 - (1 - 1 / m) ** (distinct - 1) > TARGET:
        m += 1
    return {
        "rows": len(columns["country"]),
        "cross_values": len(pairs),
        "distinct_crosses": distinct,
        "bins_used": len(crosses_in_bin),
        "colliding_crosses": sum(len(s) for s in crosses_in_bin.values() if len(s) > 1),
        "collision_share": colliding_values / len(pairs),
        "suggested_num_bins": m,
    }


def test_collision_report_matches_a_brute_force_count(module_run):
    rows, out = module_run
    reports = _bc_tft().read_collision_stats(out)
    assert sorted(reports) == sorted(c.name for c in CROSSES)
    assert all(os.path.exists(os.path.join(out, "transform_fn", "assets", f"beam_cross_collisions_{c.name}.json"))
               for c in CROSSES)
    columns = _expected_columns(rows)
    for cross in CROSSES:
        expected = _brute_force(cross, columns)
        report = reports[cross.name]
        got = {k: report[k] for k in expected}
        assert math.isclose(got.pop("collision_share"), expected.pop("collision_share"))
        assert got == expected, cross.name
        assert report["features"] == list(cross.features) and report["num_bins"] == cross.num_bins
    assert reports["country_X_hour"]["collision_share"] > 0  # 7 bins for 30 crosses: the report shows it


def test_module_file_run_with_its_own_defaults(tmp_path):
    """TFX's one-argument contract (no custom_config) and the module's command line."""
    import tensorflow_transform as tft

    module = load_module_file()
    rows = [{"country": "fr", "hour": 13, "device": "ios", "tags": ["a"], "label": 1},
            {"country": "us", "hour": 7, "label": 0}]
    module.write_examples(rows, str(tmp_path / "examples.tfrecord"))
    out = module.run(["--examples", str(tmp_path / "*.tfrecord"), "--output_dir", str(tmp_path / "out"),
                      "--runner=FnApiRunner"])
    output = tft.TFTransformOutput(out)
    assert {c.name: output.num_buckets_for_transformed_feature(c.name) for c in module.CROSSES} == {
        c.name: c.num_bins for c in module.CROSSES
    }
    transformed = _transformed_rows(out)
    columns = {"country": ["fr", "us"], "hour": [13, 7], "device": ["ios", "unknown"], "tags": [["a"], []]}
    expected = {c.name: c.apply(columns) for c in module.CROSSES}
    expected = {k: v.to_pylist() if hasattr(v, "to_pylist") else v.tolist() for k, v in expected.items()}
    got = {name: [row[name] for row in sorted(transformed, key=lambda r: -r["label"])] for name in expected}
    assert got == expected
    assert sorted(_bc_tft().read_collision_stats(output)) == sorted(c.name for c in module.CROSSES)


def test_module_file_splits_space_separated_values(tmp_path):
    """``split``: a string feature of space-separated values (a CSV cell) crossed as a multivalent one;
    a value list works too, and a missing, empty or blank value gives no id."""
    from apache_beam.testing.test_pipeline import TestPipeline

    module = load_module_file()
    tags = [["a b"], ["c"], [], ["d", "e  f"], None, [" "]]  # as tf.Examples hold them
    rows = [{"country": f"c{i}", "hour": i, "label": 0, **({} if t is None else {"tags": t})} for i, t in enumerate(tags)]
    module.write_examples(rows, str(tmp_path / "examples.tfrecord"))
    cross = Cross(["tags", "country"], 50)
    config = {"crosses": [cross.to_dict()], "split": ["tags"], "passthrough": ["hour"], "collision_stats": False}
    with TestPipeline(runner="FnApiRunner") as pipeline:
        module.transform_examples(pipeline, str(tmp_path / "*.tfrecord"), str(tmp_path / "out"),
                                  custom_config=config, temp_dir=str(tmp_path / "tmp"))
    got = [row[cross.name] for row in sorted(_transformed_rows(str(tmp_path / "out")), key=lambda r: r["hour"])]
    split = [["a", "b"], ["c"], [], ["d", "e", "f"], [], []]
    assert got == cross.apply({"tags": split, "country": [r["country"] for r in rows]}).to_pylist()
    assert [len(ids) for ids in got] == [2, 1, 0, 3, 0, 0]


@pytest.mark.parametrize(
    "split, error",
    [("tags", "`split` must be a list of feature names"), (["nope"], "Features \\['nope'\\] are to be split")],
)
def test_module_file_rejects_a_bad_split(split, error):
    module = load_module_file()
    inputs = {"tags": tf.sparse.from_dense(tf.constant([["a"]])), "country": tf.constant(["fr"])}
    with pytest.raises((TypeError, KeyError), match=error):
        module.preprocessing_fn(inputs, {"crosses": [Cross(["tags", "country"], 5).to_dict()], "split": split})


def test_import_beam_cross_does_not_load_the_tft_module():
    import subprocess
    import sys

    code = (
        "import sys, beam_cross\n"
        "assert 'beam_cross.tft' not in sys.modules and 'tensorflow_transform' not in sys.modules\n"
        "import beam_cross.tft\n"
        "print(beam_cross.tft.hashed_cross.__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "beam_cross.tft"


def test_tft_all_is_its_documented_api_and_resolves():
    import beam_cross.tft

    assert sorted(beam_cross.tft.__all__) == [
        "collision_stats_analyzer", "hashed_cross", "make_preprocessing_fn", "read_collision_stats", "transform_ids"]
    assert all(callable(getattr(beam_cross.tft, name)) for name in beam_cross.tft.__all__)

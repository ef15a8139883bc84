"""The ``beam-cross`` command: every input format round-trips, bad input is reported or rejected,
and no row goes unaccounted for. Inputs are written and outputs read back with independent code
(the csv/json modules, pyarrow, TensorFlow's tf.train.Example); expected ids come from hashed_cross.
The manifest's row counts are checked against the rows actually in the files.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_cross import Cross, FeatureError, hashed_cross
from beam_cross.job.cli import main
from beam_cross.job.flags import parse_cross_flag, sample_path
from beam_cross.job.formats import examples
from beam_cross.job.run import run

CROSSES = [Cross(["country", "hour"], 100), Cross(["interests", "device"], 50)]
CROSS_FLAGS = ["--cross", "country,hour:100", "--cross", "interests,device:50"]


def _sample_rows(n=300):
    with open(sample_path()) as handle:
        return [json.loads(line) for _, line in zip(range(n), handle)]


def _expected(row, cross):
    """The ids of ``cross`` on one input row, or None when the row cannot be crossed."""
    try:
        values = {f: [row[f]] for f in cross.features}
        ids = hashed_cross(values, cross.num_bins, hash_key=cross.hash_key)
    except (FeatureError, KeyError):
        return None
    return ids.to_pylist()[0] if isinstance(ids, pa.ListArray) else int(ids[0])


def _rejected_id(row):
    """click_id of a rejected row: a dict (rejected by the crossing) or its line (rejected by the reader)."""
    if isinstance(row, dict):
        return row["click_id"]
    if row.startswith("{"):
        return json.loads(row)["click_id"]
    if "," not in row:  # a tf.Example record, as hex
        import tensorflow as tf

        return tf.train.Example.FromString(bytes.fromhex(row)).features.feature["click_id"].int64_list.value[0]
    return int(row.split(",")[0])


def _check_output(rows, crossed, rejected):
    """Every input row is crossed with the right ids, or rejected when it cannot be crossed."""
    by_id = {r["click_id"]: r for r in crossed}
    rejected_ids = {_rejected_id(r["row"]) for r in rejected}
    assert len(crossed) + len(rejected) == len(rows)
    for row in rows:
        expected = [_expected(row, cross) for cross in CROSSES]
        if None in expected:
            assert row["click_id"] in rejected_ids, row
        else:
            assert [by_id[row["click_id"]][c.name] for c in CROSSES] == expected, row


def _read_rejected(output):
    rows = []
    for path in sorted(glob.glob(f"{output}/rejected/part-*")):
        with open(path) as handle:
            rows += [json.loads(line) for line in handle]
    return rows


def _manifest(output):
    return json.loads(Path(output, "_MANIFEST.json").read_text())


def _check_manifest(output, read_one):
    """The manifest lists exactly the files present, each with the rows it really holds."""
    manifest = _manifest(output)
    for kind, reader in (("crossed", read_one), ("rejected", lambda p: _read_jsonl([p]))):
        listed = {e["path"]: e["rows"] for e in manifest["files"][kind]}
        assert sorted(listed) == sorted(os.path.relpath(p, output) for p in glob.glob(f"{output}/{kind}/*"))
        for path, rows in listed.items():
            assert len(reader(os.path.join(output, path))) == rows, path
    assert manifest["rows"]["read"] == manifest["rows"]["crossed"] + manifest["rows"]["rejected"]
    return manifest


# -- writers and readers independent of beam_cross.job.formats -------------------------------------------
def _write_csv(rows, path):
    columns = list(rows[0])
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            cells = []
            for c in columns:
                value = row.get(c)
                cells.append("|".join(value) if isinstance(value, list) else "" if value is None else str(value))
            writer.writerow(cells)


def _read_csv(paths):
    rows = []
    for path in paths:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                row["click_id"] = int(row["click_id"])
                row["country_X_hour"] = int(row["country_X_hour"])
                ids = row["interests_X_device"]
                row["interests_X_device"] = [int(v) for v in ids.split("|")] if ids else []
                rows.append(row)
    return rows


def _tf_example(row):
    import tensorflow as tf

    feature = {}
    for name, value in row.items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if all(isinstance(v, int) for v in values) and values:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        elif all(isinstance(v, (int, float)) for v in values) and values:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() for v in values]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _write_tfrecord(rows, path):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            writer.write(_tf_example(row).SerializeToString())


def _read_tfrecord(paths):
    import tensorflow as tf

    rows = []
    for record in tf.data.TFRecordDataset([str(p) for p in paths]).as_numpy_iterator():
        features = tf.train.Example.FromString(record).features.feature
        rows.append({
            "click_id": features["click_id"].int64_list.value[0],
            "country_X_hour": features["country_X_hour"].int64_list.value[0],
            "interests_X_device": list(features["interests_X_device"].int64_list.value),
        })
    return rows


def _read_jsonl(paths):
    return [json.loads(line) for path in paths for line in Path(path).read_text().splitlines()]


def _read_parquet(paths):
    return [row for path in paths for row in pq.read_table(path).to_pylist()]


FORMATS = {
    # format: (writer, reader, extra flags)
    "csv": (_write_csv, _read_csv, ["--schema", "hour:int,interests:string_list"]),
    "jsonl": (lambda rows, path: Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows)), _read_jsonl,
              ["--schema", "hour:int"]),
    "parquet": (lambda rows, path: pq.write_table(pa.Table.from_pylist(rows), path), _read_parquet, []),
    "tfrecord": (_write_tfrecord, _read_tfrecord, ["--schema", "interests:string_list,hour:int"]),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_round_trips(fmt, tmp_path):
    write, read, flags = FORMATS[fmt]
    rows = _sample_rows()
    if fmt == "parquet":  # a Parquet column has one type: leave out the rows with a float hour
        rows = [r for r in rows if not isinstance(r["hour"], float)]
    (tmp_path / "in").mkdir()
    write(rows[:150], tmp_path / "in" / f"a.{fmt}")
    write(rows[150:], tmp_path / "in" / f"b.{fmt}")
    output = tmp_path / "out"
    summary = run(["--input", str(tmp_path / "in"), *CROSS_FLAGS, *flags, "--output", str(output)])
    crossed_files = sorted(glob.glob(f"{output}/crossed/part-*-of-*.{fmt}"))
    assert crossed_files and summary.crossed_files == crossed_files
    crossed = read(crossed_files)
    rejected = _read_rejected(output)
    _check_output(rows, crossed, rejected)
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (len(rows), len(crossed), len(rejected))
    assert rejected, "the sample has rows with missing values"
    manifest = _check_manifest(output, lambda path: read([path]))
    assert manifest["rows"] == {"read": len(rows), "crossed": len(crossed), "rejected": len(rejected)}
    assert [Cross.from_dict(c) for c in manifest["crosses"]] == CROSSES
    inputs = [str(tmp_path / "in" / f"a.{fmt}"), str(tmp_path / "in" / f"b.{fmt}")]
    assert [f["path"] for f in manifest["input"]["files"]] == inputs
    assert [(f["size"], f["modified"]) for f in manifest["input"]["files"]] == [
        (os.stat(p).st_size, os.stat(p).st_mtime) for p in inputs]
    assert [f["rows"] for f in manifest["input"]["files"]] == [150, len(rows) - 150]


def test_output_format_flag_and_yaml_config(tmp_path):
    config = tmp_path / "crosses.yaml"
    config.write_text("crosses:\n" + "".join(
        f"  - {{features: {list(c.features)}, num_bins: {c.num_bins}}}\n" for c in CROSSES
    ))
    rows = _sample_rows()
    output = tmp_path / "out"
    assert main(["--input", sample_path(), "--config", str(config), "--output", str(output),
                 "--output-format", "parquet", "--num_shards", "3", "--no_chart"]) == 0
    shards = sorted(glob.glob(f"{output}/crossed/part-*"))
    assert [os.path.basename(p) for p in shards] == [f"part-0000{i}-of-00003.parquet" for i in range(3)]
    crossed = _read_parquet(shards)
    all_rows = [json.loads(line) for line in Path(sample_path()).read_text().splitlines()]
    _check_output(all_rows, crossed, _read_rejected(output))
    assert len(crossed) > len(rows)
    assert not os.path.exists(output / "report" / "collisions.png")


def test_no_arguments_runs_on_the_bundled_sample(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-m", "beam_cross"], cwd=tmp_path, capture_output=True, text=True,
                          env=environment, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    output = tmp_path / "beam-cross-output"
    assert str(output / "crossed" / "part-00000-of-00001.jsonl") in done.stdout
    assert "rows accounted for" in done.stdout
    assert (tmp_path / "beam-cross-output" / "_MANIFEST.json").exists()
    crossed = _read_jsonl(glob.glob(f"{output}/crossed/part-*"))
    rejected = _read_rejected(output)
    assert len(crossed) + len(rejected) == len(Path(sample_path()).read_text().splitlines())
    assert {r["reason"] for r in rejected} >= {"null", "type"}  # an absent value; a float hour
    report = json.loads((output / "report" / "collisions.json").read_text())["crosses"]
    assert [r["cross"] for r in report] == ["country_X_hour", "device_X_site_category", "ad_id_X_publisher",
                                            "interests_X_country"]
    assert report[0]["rows"] == len(crossed)
    assert (output / "report" / "collisions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the ids are those of hashed_cross on the same rows
    for row in crossed[:200]:
        assert row["country_X_hour"] == int(hashed_cross([[row["country"]], [row["hour"]]], 1000)[0])


def test_malformed_csv_rows_are_rejected_with_reasons(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text(
        "country,hour\n"
        "fr,13\n"
        "us,7,extra\n"  # a bad row: one field too many
        "de,late\n"  # the wrong type: hour is declared int
        ",9\n"  # a missing value
        "jp,21\n"
    )
    output = tmp_path / "out"
    summary = run(["--input", str(path), "--cross", "country,hour:10", "--schema", "hour:int",
                   "--output", str(output), "--no_chart"])
    rejected = {r["reason"]: r for r in _read_rejected(output)}
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (5, 2, 3)
    assert rejected["parse"]["message"].startswith(f"{path}:3: ")
    assert rejected["parse"]["source"] == f"{path}:3"
    assert rejected["type"]["row"] == "de,late"
    assert rejected["type"]["source"] == f"{path}:4"
    assert rejected["null"]["feature"] == "country"
    assert rejected["null"]["source"] == f"{path}:5"  # rejected by the crossing, located by its line


def test_invalid_json_line_is_rejected(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": "x", "b": 1}\n{"a": "y", "b": \n[1, 2]\n{"a": "z", "b": 3}\n')
    output = tmp_path / "out"
    summary = run(["--input", str(path), "--cross", "a,b:7", "--output", str(output), "--no_chart"])
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (4, 2, 2)
    assert sorted(r["reason"] for r in _read_rejected(output)) == ["parse", "parse"]


@pytest.mark.parametrize(
    "content, arguments, message",
    [
        ("country,hour\nfr,13\n", ["--cross", "country,minute:10"], "Cross `country_X_minute` needs features ['minute'], which the input does not have"),
        ("", ["--cross", "country,hour:10"], "Every input file is empty"),
        ("country,hour\nfr,13\n", ["--cross", "country:10"], "A cross needs at least two features"),
        ("country,hour\nfr,13\n", ["--cross", "country,hour"], "`--cross` must look like"),
        ("country,hour\nfr,13\n", [], "No cross to compute"),
        ("country,hour\nfr,13\n", ["--cross", "country,hour:10", "--ouput", "x"], "--ouput (did you mean --output?)"),
        ("country,hour\nfr,13\n", ["--corss", "country,hour:10"], "--corss (did you mean --cross?)"),
        ("country,hour\nfr,13.5\n", ["--cross", "country,hour:10"], "Cross `country_X_hour` crosses the float column `hour` as it is; floats are crossed through a `Bucketize` only"),
        ("country,hour\nfr,13.5\n", ["--cross", "country,hour:10"], "--cross 'bucketize(hour:B1,B2,...),...:NUM_BINS'"),
        ("age,country\n17.5,fr\n", ["--cross", "bucketize(country:1,2),age:10"],
         "Cross `country_X_age`: `Bucketize` of column `country` takes ints or floats, but the column holds strings"),
        ("age,country\n17.5,fr\n", ["--cross", "bucketize(age:a),country:10"], "could not convert string to float: 'a'"),
        ("age,country\n17.5,fr\n", ["--cross", "bucketize(age:18,country:10"], "`--cross` must look like"),
        ("age,country\n17.5,fr\n", ["--cross", "lookup(country:fr),age:10"], "must be a column name or one of bucketize"),
        ("country,hour\nfr,13\n", ["--cross", "country,hour:10", "--schema", "hour:float"], "declare it `--schema hour:int`"),
        ("country,hour,country_X_hour\nfr,13,1\n", ["--cross", "country,hour:10"], "is named like an input column"),
        ("country,hour,country\nfr,13,de\n", ["--cross", "country,hour:10"], "names columns ['country'] more than once"),
        ("country,hour\nfr,13\n", ["--cross", "country,hour:10", "--num_shards", "-1"], "`--num_shards` must be >= 0"),
        ("country,hour\nfr,13\n", ["--cross", "country,hour:10", "--max_rejected_share", "2"], "between 0 and 1"),
    ],
)
def test_input_errors_exit_2_with_a_clear_message(tmp_path, capsys, content, arguments, message):
    path = tmp_path / "clicks.csv"
    path.write_text(content)
    assert main(["--input", str(path), *arguments, "--output", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "_MANIFEST.json").exists()


def test_a_json_key_seen_in_no_sampled_line_is_refused_with_a_hint(tmp_path, capsys):
    path = tmp_path / "clicks.jsonl"
    path.write_text('{"country": "fr", "hour": 13}\n')
    assert main(["--input", str(path), "--cross", "country,minute:10", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "needs features ['minute'], which the input does not have" in err and "(input file" in err and "--schema minute:string" in err
    declared = ["--schema", "minute:int"]
    summary = run(["--input", str(path), "--cross", "country,hour:10", *declared, "--output", str(tmp_path / "out"), "--no_chart"])
    assert (summary.rows_read, summary.rows_crossed, summary.rows_rejected) == (1, 1, 0)


def test_no_matching_file(tmp_path, capsys):
    assert main(["--input", str(tmp_path / "*.csv"), "--cross", "a,b:3"]) == 2
    assert "`--input` matches no file" in capsys.readouterr().err


def test_parse_cross_flag():
    assert parse_cross_flag("country,hour:1000") == Cross(["country", "hour"], 1000)
    assert parse_cross_flag("ch=country,hour:8", "one_hot", 7) == Cross(
        ["country", "hour"], 8, name="ch", output_mode="one_hot", hash_key=7)
    with pytest.raises(ValueError, match="`--cross` must look like"):
        parse_cross_flag("country,hour")


def test_tf_example_codec_matches_tensorflow():
    row = {"s": "fr", "b": "caf\u00e9", "i": -3, "big": 2**63 - 1, "f": 0.5, "l": ["a", "b"], "il": [1, 2, 3]}
    import tensorflow as tf

    assert tf.train.Example.FromString(examples.encode_example(row)) == _tf_example(row)  # map order may differ
    assert examples.decode_example(_tf_example(row).SerializeToString(), {}) == row


def test_tf_example_batch_codec_matches_tensorflow():
    import tensorflow as tf

    from beam_cross.job.formats.examples import encode_batch

    rows = [{"s": "fr", "i": -3, "big": 2**63 - 1, "f": 0.5, "l": ["a", "b"], "il": [1, 2, 300], "e": []},
            {"s": "caf\u00e9" * 60, "i": 2**40, "big": 0, "f": None, "l": None, "il": [7], "e": []}]
    encoded = encode_batch(pa.RecordBatch.from_pylist(rows))
    for row, record in zip(rows, encoded.to_pylist()):
        assert tf.train.Example.FromString(record) == _tf_example(row)


def test_declared_type_rejects_the_other_kind(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"country": "fr", "hour": 13}\n{"country": "us", "hour": "7"}\n{"country": 5, "hour": 7}\n')
    output = tmp_path / "out"
    summary = run(["--input", str(path), "--cross", "country,hour:10", "--schema", "country:string,hour:int",
                   "--output", str(output), "--no_chart"])
    rejected = sorted((r["reason"], r["feature"]) for r in _read_rejected(output))
    assert (summary.rows_crossed, rejected) == (1, [("type", None), ("type", None)])  # refused by the typed read


def test_progress_shows_when_the_root_logger_was_set_up_before(tmp_path):
    """Without Beam's gcp extra, importing Beam's IO logs on the root logger (which gives it a default
    handler at WARNING) that the BigQuery libraries are missing: the command drops that notice and
    still shows its own progress lines."""
    script = (
        "import logging, sys\n"
        "logging.warning('an earlier notice')  # gives the root logger a default handler\n"
        "from beam_cross.job.cli import main\n"
        "logging.warning('apitools not found, and bigquery client libraries are not available')\n"
        "sys.exit(main([]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "an earlier notice" in done.stderr
    assert "apitools" not in done.stderr
    assert "beam-cross: 1 jsonl file(s), 4 cross(es) -> " in done.stderr


@pytest.mark.parametrize("forced", ["numpy", None])
def test_version_names_the_kernel_in_use(forced):
    env = {k: v for k, v in os.environ.items() if k != "BEAM_CROSS_KERNEL"}
    if forced:
        env["BEAM_CROSS_KERNEL"] = forced
    probe = [sys.executable, "-c", "import beam_cross.core as c; print(c.KERNEL)"]
    kernel = subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip()
    shown = subprocess.run([sys.executable, "-m", "beam_cross", "--version"], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip().endswith(f"(kernel: {kernel})")
    if forced:
        assert kernel == forced

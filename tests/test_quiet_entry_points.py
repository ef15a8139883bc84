"""The front doors print nothing a user cannot act on: each snippet runs in a fresh interpreter, with a
user's environment (no ``TF_CPP_MIN_LOG_LEVEL``), and its stderr is compared line for line.

Lines that come from the user's own imports before beam_cross (TensorFlow's start-up lines after a
user's ``import tensorflow``) are not beam_cross's to drop; the snippets here import beam_cross first
where that matters. Beam's BigQuery notice shows only without Beam's ``gcp`` extra, so it is logged
here by hand, exactly as Beam logs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from beam_cross.core.stderr_lines import lines_dropped

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "beam_cross" / "data" / "sample_clicks.jsonl"
APITOOLS = ("apitools not found, and bigquery client libraries are not available despite the import not raising "
            "an ImportError.")
# tf.Transform's own advice to the user of instance dicts (use RecordBatches): theirs to act on, kept.
TFT_ADVICE = [
    "WARNING:absl:You are passing instance dicts and DatasetMetadata to TFT which will not provide optimal "
    "performance. Consider following the TFT guide to upgrade to the TFXIO format (Apache Arrow RecordBatch).",
] * 2 + [
    "WARNING:absl:You are outputting instance dicts from `TransformDataset` which will not provide optimal "
    "performance. Consider setting  `output_record_batches=True` to upgrade to the TFXIO format (Apache Arrow "
    "RecordBatch). Encoding functionality in this module works with both formats.",
]
START_LINES = [
    f"beam-cross: no --input: running on the bundled sample {SAMPLE}",
    "beam-cross: crossed as int, their float values rejected per row (declare `--schema` to choose): hour",
]


def user_environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run(args, cwd, *, code=None, ok=(0,)):
    command = [sys.executable, *args] + (["-c", textwrap.dedent(code)] if code else [])
    done = subprocess.run(command, cwd=cwd, env=user_environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode in ok, done.stderr[-4000:]
    return done.stdout, done.stderr.splitlines()


CROSS_FEATURES = """
    import apache_beam as beam
    from beam_cross import Cross, CrossFeatures

    crosses = [Cross(["country", "hour"], num_bins=1000), Cross(["device", "country"], num_bins=100)]
    with beam.Pipeline(runner="FnApiRunner") as p:
        rows = p | beam.Create([{"country": "fr", "hour": 13, "device": "ios"}])
        _ = rows | CrossFeatures(crosses) | beam.Map(print)
"""
EXPECTED_ROW = "{'country': 'fr', 'hour': 13, 'device': 'ios', 'country_X_hour': 755, 'device_X_country': 9}\n"


def test_cross_features_prints_its_rows_only(tmp_path):
    assert run([], tmp_path, code=CROSS_FEATURES) == (EXPECTED_ROW, [])


@pytest.mark.parametrize("flags", [[], ["--zzzz_qqqq"]])
def test_a_transform_on_a_list_does_not_warn_about_the_script_path(tmp_path, flags):
    # Beam runs it in a pipeline of PipelineOptions(sys.argv): the script's path is "unparseable".
    (tmp_path / "example.py").write_text(textwrap.dedent("""
        from beam_cross import Cross, CrossFeatures

        print([r["country_X_hour"] for r in [{"country": "fr", "hour": 13}] | CrossFeatures([Cross(["country", "hour"], 1000)])])
    """))
    stdout, stderr = run(["example.py", *flags], tmp_path)
    assert stdout == "[755]\n"
    typo = [  # a flag of the user's still shows
        "WARNING:apache_beam.options.pipeline_options:Unparseable argument: --zzzz_qqqq",
        *["WARNING:apache_beam.options.pipeline_options:Discarding unparseable args: ['example.py', '--zzzz_qqqq']"] * 2,
    ]
    assert stderr == (typo if flags else [])


def test_the_bigquery_notice_is_dropped_and_nothing_else(tmp_path):
    # Beam logs it on the root logger while it loads, without its gcp extra; beam_cross loads Beam here.
    code = f"""
        import logging
        import beam_cross.beam
        logging.warning({APITOOLS!r})
        logging.warning("apitools is what a user's own warning talks about")
        import apache_beam
        logging.getLogger("apache_beam.runners.portability.local_job_service").warning(
            "Worker: severity: WARN message: \\"Discarding unparseable args: ['--my_flag']\\"")
    """
    assert run([], tmp_path, code=code) == ("", [
        "WARNING:root:apitools is what a user's own warning talks about",
        "WARNING:apache_beam.runners.portability.local_job_service:Worker: severity: WARN message: "
        "\"Discarding unparseable args: ['--my_flag']\"",
    ])


def test_mltransform_prints_its_rows_only_even_with_all_warnings_shown(tmp_path):
    code = """
        import tempfile

        import apache_beam as beam
        from apache_beam.ml.transforms.base import MLTransform
        from beam_cross.beam.mltransform import HashedCrossing

        artifacts = tempfile.mkdtemp()
        with beam.Pipeline() as p:
            rows = p | beam.Create([{"country": "fr", "hour": 13}])
            _ = (rows | MLTransform(write_artifact_location=artifacts).with_transform(
                     HashedCrossing(columns=["country", "hour"], num_bins=1000)) | beam.Map(print))
        with beam.Pipeline() as p:
            rows = p | beam.Create([{"country": "fr", "hour": 13}])
            _ = rows | MLTransform(read_artifact_location=artifacts) | beam.Map(print)
    """
    # -W default shows every DeprecationWarning, jsonpickle's to MLTransform included (as pytest does).
    stdout, stderr = run(["-W", "default::DeprecationWarning:apache_beam.ml.transforms.base"], tmp_path, code=code)
    assert stdout == "{'country': 'fr', 'hour': 13, 'country_X_hour': 755}\n" * 2
    assert stderr == []


@pytest.mark.slow
def test_cross_features_on_the_multi_process_runner_prints_its_rows_only(tmp_path):
    code = CROSS_FEATURES.replace(
        'runner="FnApiRunner"',
        'options=beam.options.pipeline_options.PipelineOptions(["--direct_num_workers", "2", '
        '"--direct_running_mode", "multi_processing"])')
    assert run([], tmp_path, code=code) == (EXPECTED_ROW, [])


def test_command_prints_each_note_once_where_the_job_starts(tmp_path):
    stdout, stderr = run(["-m", "beam_cross"], tmp_path)
    assert stderr == [*START_LINES, f"beam-cross: 1 jsonl file(s), 4 cross(es) -> {tmp_path / 'beam-cross-output'}"]
    assert stdout.startswith("beam-cross: done in ") and "note:" not in stdout
    assert "  all 2,500 rows accounted for" in stdout


def test_a_note_known_only_at_the_end_is_in_the_summary_once(tmp_path):
    code = """
        import sys
        sys.modules["matplotlib"] = None  # not installed
        from beam_cross.job.cli import main
        sys.exit(main(["--output", "out"]))
    """
    stdout, stderr = run([], tmp_path, code=code)
    assert stderr == [*START_LINES, f"beam-cross: 1 jsonl file(s), 4 cross(es) -> {tmp_path / 'out'}"]
    notes = [line for line in stdout.splitlines() if "note:" in line]
    assert notes == ["  note: no chart: matplotlib is not installed (pip install 'beam-cross[report]')"]


def test_command_help_prints_to_stdout_only(tmp_path):
    stdout, stderr = run(["-m", "beam_cross", "--help"], tmp_path)
    assert stdout.startswith("usage: beam-cross") and stderr == []


@pytest.mark.slow
def test_command_on_the_multi_process_runner_prints_its_own_lines_only(tmp_path):
    stdout, stderr = run(["-m", "beam_cross", "--direct_num_workers", "2", "--direct_running_mode",
                          "multi_processing", "--no_chart"], tmp_path)
    assert stderr == [*START_LINES, f"beam-cross: 1 jsonl file(s), 4 cross(es) -> {tmp_path / 'beam-cross-output'}"]
    assert "  all 2,500 rows accounted for" in stdout


@pytest.mark.slow
def test_the_tensorflow_engine_prints_no_tensorflow_start_up_line(tmp_path):
    code = CROSS_FEATURES.replace("CrossFeatures(crosses)", 'CrossFeatures(crosses, engine="tensorflow")')
    assert run([], tmp_path, code=code) == (EXPECTED_ROW, [])


@pytest.mark.slow
def test_keras_layer_prints_no_tensorflow_start_up_line(tmp_path):
    code = """
        import numpy as np
        from beam_cross import HashedCrossing

        print(np.asarray(HashedCrossing(num_bins=1000)((np.array(["fr"]), np.array([13])))).tolist())
    """
    assert run([], tmp_path, code=code) == ("[755]\n", [])


@pytest.mark.slow
def test_tft_preprocessing_fn_prints_tft_advice_only(tmp_path):
    code = """
        import tempfile

        import beam_cross.tft
        import apache_beam as beam
        import tensorflow as tf
        import tensorflow_transform.beam as tft_beam
        from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

        def preprocessing_fn(inputs):
            return {"country_X_hour": beam_cross.tft.hashed_cross([inputs["country"], inputs["hour"]], num_bins=1000)}

        spec = {"country": tf.io.FixedLenFeature([], tf.string), "hour": tf.io.FixedLenFeature([], tf.int64)}
        metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
        with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
            with beam.Pipeline(runner="FnApiRunner") as p:
                rows = p | beam.Create([{"country": "fr", "hour": 13}])
                (out, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
                _ = out | beam.Map(print)
    """
    # -11: tensorflow_transform 1.21 / TF 2.21 crash at interpreter exit, with or without beam_cross.
    stdout, stderr = run([], tmp_path, code=code, ok=(0, -11))
    assert stdout == "{'country_X_hour': 755}\n"
    assert stderr == TFT_ADVICE


def test_the_line_filter_drops_only_what_it_is_told_and_lets_the_rest_through(capfd):
    child = "import sys; sys.stderr.write('noise 1\\nkept 1\\nnoise 2\\npartial')"
    with lines_dropped(lambda line: line.startswith(b"noise")) as pump:
        subprocess.run([sys.executable, "-c", child], check=True)
        os.write(2, b" line\n")
        assert pump.catch_up()
    os.write(2, b"noise after the block\n")
    assert capfd.readouterr().err == "kept 1\npartial line\nnoise after the block\n"

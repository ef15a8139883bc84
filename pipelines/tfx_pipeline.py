"""A TFX pipeline that crosses features with beam_cross, trains on the crosses and pushes a model
that serves raw tf.Examples, on the bundled click sample.

    python pipelines/tfx_pipeline.py --output_dir tfx-output/

CsvExampleGen -> StatisticsGen -> SchemaGen -> Transform (``pipelines/tfx_module.py``, the crosses
passed in ``custom_config``) -> Trainer (``pipelines/tfx_trainer.py``: an embedding per cross,
sized from the domain that ``beam_cross.tft`` records in the transformed schema) -> Pusher (to
``<output_dir>/serving``), run by ``LocalDagRunner`` with ml-metadata's SQLite store. The pushed
SavedModel takes serialized raw tf.Examples: ``serving_default`` gives the click probability,
``transform_features`` the crossed ids. Needs TFX: see docs/tft.md, "TFX: a whole pipeline", for the install.

The sample is JSON Lines; the first step writes it to ``<output_dir>/input/clicks.csv``. CSV has
no lists, so the multivalent ``interests`` is written as one cell of space-separated values, which
the module file splits back (``split`` in its ``custom_config``); a row without interests gets no
``interests_X_country`` id.

The sample holds bad rows on purpose; they are handled explicitly by a Beam step in front of the
TFX pipeline, with ``beam_cross.CrossFeatures(...).with_exception_handling()``:

- a row without ``device`` (an optional feature) is kept: its CSV cell is empty, SchemaGen makes
  ``device`` a VarLen feature, and the module file fills ``"unknown"`` (``defaults``). (CSV cannot
  tell an empty string from a missing value: an empty ``device`` would be filled too.);
- a row that cannot be crossed (``country`` null, ``hour`` a float) is not written to the CSV: it
  goes to ``<output_dir>/rejected.jsonl`` as ``{reason, message, feature, cross, row}``, the row as
  read. Rows read = rows written to the CSV + rows rejected, checked after the step.

``<output_dir>/summary.json`` holds the row counts and the paths of the pushed model and the
transform graph.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path

from beam_cross import Bucketize, Cross

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "beam_cross" / "data" / "sample_clicks.jsonl"

CROSSES = [
    Cross(["country", "hour"], num_bins=1000),
    Cross(["device", "site_category"], num_bins=16),
    Cross(["ad_id", "publisher"], num_bins=2000),
    Cross(["interests", "country"], num_bins=500),  # one id per interest; none for a row without
    # The hour's bucket (night, morning, afternoon, evening) by device, as crossed_column over a
    # bucketized_column: the Transform graph bucketizes, in training and in the served model.
    Cross([Bucketize("hour", [6, 12, 18]), "device"], num_bins=32, name="device_X_hour_bucketized"),
]
DEFAULTS = {"device": "unknown"}  # optional and single-valued: filled, in training and at serving
SPLIT = ["interests"]  # a list, written to the CSV as one cell of space-separated values
LABEL = "clicked"
FEATURE_TYPES = {"country": "string", "hour": "int", "device": "string", "ad_id": "int",
                 "publisher": "string", "site_category": "string", "interests": "string"}
CSV_COLUMNS = [*FEATURE_TYPES, LABEL]
BEAM_ARGS = ["--runner=FnApiRunner"]  # in-process; the DirectRunner would look for Prism first
_RAW = "__raw_line__"  # the sample line, carried through the check so the CSV holds the row as read


def filled(row: dict) -> dict:
    """``row`` with the defaults of missing optional features: what the pipeline crosses."""
    return {**row, **{f: v for f, v in DEFAULTS.items() if row.get(f) is None}}


def _to_check(line: str) -> dict:
    """A sample line as CrossFeatures checks it (defaults filled), carrying the line as it was."""
    return {**filled(json.loads(line)), _RAW: line}


def _csv_line(checked: dict) -> str:
    row = json.loads(checked[_RAW])
    if row.get(LABEL) not in (0, 1):
        raise ValueError(f"Feature `{LABEL}` (the label) must be 0 or 1. Received: value={row.get(LABEL)!r} in {row!r}")
    for feature in SPLIT:
        values = row.get(feature) or []
        if any(not v or v.split() != [v] for v in values):  # CrossFeatures has checked that they are strings
            raise ValueError(f"Feature `{feature}` is written as space-separated values, so a value must be "
                             f"non-empty and hold no whitespace. Received: value={values!r} in {row!r}")
        row[feature] = " ".join(values)
    text = io.StringIO()
    csv.writer(text, lineterminator="").writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
    return text.getvalue()


def _rejected_line(error) -> str:
    """A ``Rejected`` as a JSON line, holding the row as read (without the filled defaults)."""
    record = {"reason": error.reason, "message": error.message, "feature": error.feature, "cross": error.cross,
              "row": json.loads(error.element[_RAW])}
    return json.dumps(record)


def prepare_input(sample: str | Path, csv_path: str | Path, rejected_path: str | Path,
                  beam_pipeline_args=BEAM_ARGS) -> dict:
    """A Beam pipeline: the JSON Lines ``sample`` -> ``CrossFeatures(...).with_exception_handling()``
    -> the rows that can be crossed, as they were read, to ``csv_path`` (a missing value as an empty
    cell), the others to ``rejected_path``. Returns the counts; raises if a row went missing."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics, MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_cross import CrossFeatures

    read = Metrics.counter("tfx_pipeline", "rows_read")

    def count(line):
        read.inc()
        return line

    pipeline = beam.Pipeline(options=PipelineOptions(list(beam_pipeline_args)))
    rows = pipeline | "Read" >> beam.io.ReadFromText(str(sample)) | "Count" >> beam.Map(count)
    crossable, rejected = (
        rows | "Parse" >> beam.Map(_to_check)
        | "Check" >> CrossFeatures(CROSSES, feature_types=FEATURE_TYPES).with_exception_handling()
    )
    _ = crossable | "AsCsv" >> beam.Map(_csv_line) | "WriteCsv" >> beam.io.WriteToText(
        str(csv_path), shard_name_template="", header=",".join(CSV_COLUMNS))
    _ = rejected | "AsJson" >> beam.Map(_rejected_line) | "WriteRejected" >> beam.io.WriteToText(
        str(rejected_path), shard_name_template="")
    result = pipeline.run()
    result.wait_until_finish()
    (counter,) = result.metrics().query(MetricsFilter().with_name("rows_read"))["counters"]
    with open(csv_path) as written, open(rejected_path) as refused:
        counts = {"rows_read": counter.committed, "rows_written": sum(1 for _ in written) - 1,  # less the header
                  "rows_rejected": 0, "rejected_by_reason": {}}
        for record in map(json.loads, refused):
            counts["rows_rejected"] += 1
            counts["rejected_by_reason"][record["reason"]] = counts["rejected_by_reason"].get(record["reason"], 0) + 1
    if counts["rows_read"] != counts["rows_written"] + counts["rows_rejected"]:
        raise RuntimeError(f"Rows were lost: read {counts['rows_read']}, written {counts['rows_written']}, "
                           f"rejected {counts['rows_rejected']}")
    return counts


def create_pipeline(root: str | Path, input_dir: str | Path, serving_dir: str | Path, *,
                    train_steps: int = 50, eval_steps: int = 5, beam_pipeline_args=BEAM_ARGS):
    """The TFX pipeline, its artifacts under ``root`` and its ml-metadata in ``root/metadata.sqlite``."""
    from tfx import v1 as tfx

    crosses = [c.to_dict() for c in CROSSES]
    example_gen = tfx.components.CsvExampleGen(input_base=str(input_dir))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        module_file=str(HERE / "tfx_module.py"),
        custom_config={"crosses": crosses, "defaults": DEFAULTS, "passthrough": [LABEL], "split": SPLIT},
    )
    trainer = tfx.components.Trainer(
        module_file=str(HERE / "tfx_trainer.py"),
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=eval_steps),
        custom_config={"crosses": crosses, "label": LABEL},
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(serving_dir))
        ),
    )
    return tfx.dsl.Pipeline(
        pipeline_name="beam_cross_clicks",
        pipeline_root=str(root),
        components=[example_gen, statistics_gen, schema_gen, transform, trainer, pusher],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(Path(root) / "metadata.sqlite")
        ),
        beam_pipeline_args=list(beam_pipeline_args),
    )


def _newest(pattern: str, root: Path) -> str:
    found = sorted(root.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"The pipeline wrote nothing matching {pattern!r} under {root}")
    return str(found[-1])


def run(output_dir: str | Path, *, sample: str | Path = SAMPLE, train_steps: int = 50, eval_steps: int = 5,
        beam_pipeline_args=BEAM_ARGS) -> dict:
    """Prepares the input, runs the pipeline with ``LocalDagRunner``, writes and returns the summary."""
    from tfx import v1 as tfx

    output_dir = Path(output_dir).resolve()
    input_dir, root, serving_dir = output_dir / "input", output_dir / "pipeline", output_dir / "serving"
    input_dir.mkdir(parents=True, exist_ok=True)
    counts = prepare_input(sample, input_dir / "clicks.csv", output_dir / "rejected.jsonl", beam_pipeline_args)
    tfx.orchestration.LocalDagRunner().run(
        create_pipeline(root, input_dir, serving_dir, train_steps=train_steps, eval_steps=eval_steps,
                        beam_pipeline_args=beam_pipeline_args)
    )
    summary = {
        **counts,
        "sample": str(sample),
        "csv": str(input_dir / "clicks.csv"),
        "rejected": str(output_dir / "rejected.jsonl"),
        "crosses": [c.to_dict() for c in CROSSES],
        "defaults": DEFAULTS,
        "split": SPLIT,
        "label": LABEL,
        # Pusher writes <serving>/<version>/; Transform writes <root>/Transform/transform_graph/<id>/.
        "pushed_model": _newest("*/saved_model.pb", serving_dir).rsplit("/", 1)[0],
        "transform_graph": _newest("Transform/transform_graph/*/transform_fn", root).rsplit("/", 1)[0],
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True, help="where the input CSV, pipeline artifacts, "
                        "ml-metadata, rejected rows and the pushed model go")
    parser.add_argument("--sample", default=str(SAMPLE), help="JSON Lines rows (default: the bundled sample)")
    parser.add_argument("--train_steps", type=int, default=50)
    parser.add_argument("--eval_steps", type=int, default=5)
    args, beam_args = parser.parse_known_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines; set before it loads
    summary = run(args.output_dir, sample=args.sample, train_steps=args.train_steps, eval_steps=args.eval_steps,
                  beam_pipeline_args=beam_args or BEAM_ARGS)
    print(f"rows read {summary['rows_read']}, to the pipeline {summary['rows_written']}, "
          f"rejected {summary['rows_rejected']} -> {summary['rejected']}")
    print(f"pushed model: {summary['pushed_model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

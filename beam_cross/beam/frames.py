"""pyarrow Tables and pandas DataFrames as ``CrossFeatures`` elements, crossed through the RecordBatch path.

``beam.io.ReadFromParquetBatched`` yields ``pyarrow.Table`` s and ``WriteToParquetBatched`` takes
them; Beam's DataFrame and batched-DoFn world hands over ``pandas.DataFrame`` s. Each such element
comes back as the same kind of element with one more column per cross, its bad rows rejected one by
one as in a RecordBatch (the rejected element is the row as a dict of its columns). A DataFrame keeps
its index labels. :func:`output_schema` gives the Arrow schema of the crossed Tables, which
``WriteToParquetBatched`` needs before the pipeline runs.

pandas is never imported here: an element can only be a DataFrame if the caller already imported it.
"""

from __future__ import annotations

import sys

import pyarrow as pa

from beam_cross.core.arrow_values import column_kinds
from beam_cross.core.elements import ElementCrosser, Rejected
from beam_cross.core.errors import describe
from beam_cross.core.spec import check_crosses_against

__all__ = ["cross_batch", "is_batch", "num_rows", "output_schema"]


def _pandas():
    return sys.modules.get("pandas")


def is_dataframe(element) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(element, pd.DataFrame)


def is_batch(element) -> bool:
    """Whether ``element`` is a batch of rows: a RecordBatch, a Table or a DataFrame."""
    return isinstance(element, (pa.RecordBatch, pa.Table)) or is_dataframe(element)


def is_batch_type(element_type) -> bool:
    """Whether a PCollection's element type is one of the batch kinds."""
    if element_type in (pa.RecordBatch, pa.Table):
        return True
    pd = _pandas()
    return pd is not None and element_type is pd.DataFrame


def num_rows(batch) -> int:
    """Rows in a crossed batch (0 for None, the result of a batch whose rows were all rejected)."""
    if batch is None:
        return 0
    return batch.num_rows if isinstance(batch, (pa.RecordBatch, pa.Table)) else len(batch)


def cross_batch(crosser: ElementCrosser, batch) -> tuple[object | None, list[Rejected]]:
    """The crossed batch, of the input's kind (None if every row was rejected), and the rejected rows."""
    if isinstance(batch, pa.RecordBatch):
        return crosser.cross_record_batch(batch)
    if isinstance(batch, pa.Table):
        out, rejected = crosser.cross_record_batch(_table_as_batch(batch))
        return (None if out is None else pa.Table.from_batches([out])), rejected
    if is_dataframe(batch):
        return _cross_dataframe(crosser, batch)
    raise TypeError(f"`batch` must be a pyarrow RecordBatch or Table, or a pandas DataFrame. Received: {describe(batch)}")


def _table_as_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    if len(batches) == 1:
        return batches[0]
    if not batches:  # an empty table has no batch
        return pa.record_batch([pa.array([], type=field.type) for field in table.schema], schema=table.schema)
    return pa.RecordBatch.from_struct_array(pa.concat_arrays([b.to_struct_array() for b in batches]))


def _cross_dataframe(crosser: ElementCrosser, frame):
    try:
        # The index travels as a column, so the kept rows keep their labels.
        batch = pa.RecordBatch.from_pandas(frame, preserve_index=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A column Arrow cannot type (e.g. objects of mixed kinds): cross row by row, so that each bad
        # row is rejected with its own reason and the good ones are kept.
        return _cross_dataframe_rows(crosser, frame)
    index_columns = [c for c in (batch.schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
    out, rejected = crosser.cross_record_batch(batch)
    if index_columns:
        rejected = [r._replace(element={k: v for k, v in r.element.items() if k not in index_columns})
                    for r in rejected]
    return (None if out is None else out.to_pandas()), rejected


def _cross_dataframe_rows(crosser: ElementCrosser, frame):
    pd = _pandas()
    records = frame.to_dict("records")
    outputs, rejected = crosser.cross_elements(records)
    kept = [i for i in range(len(records)) if i not in rejected]
    if records and not kept:
        return None, [rejected[i] for i in sorted(rejected)]
    out = pd.DataFrame([outputs[i] for i in kept], index=frame.index[kept])
    return out, [rejected[i] for i in sorted(rejected)]


def output_schema(input_schema: pa.Schema, crosses, *, keep_inputs: bool = True) -> pa.Schema:
    """The Arrow schema of ``CrossFeatures(crosses, keep_inputs=...)`` outputs for inputs of ``input_schema``.

    Pass it to ``beam.io.WriteToParquetBatched(path, schema=...)``.

    >>> from beam_cross import Cross
    >>> schema = pa.schema([("country", pa.string()), ("hour", pa.int64())])
    >>> output_schema(schema, [Cross(["country", "hour"], 1000)]).names
    ['country', 'hour', 'country_X_hour']
    """
    if not isinstance(input_schema, pa.Schema):
        raise TypeError(f"`input_schema` must be a pyarrow.Schema. Received: input_schema={input_schema!r}")
    crosser = ElementCrosser(check_crosses_against(crosses, column_kinds(input_schema)), keep_inputs=keep_inputs)
    empty = pa.record_batch([pa.array([], type=field.type) for field in input_schema], schema=input_schema)
    out, _ = crosser.cross_record_batch(empty)
    return out.schema

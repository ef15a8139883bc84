"""Parquet and TFRecord files as Arrow: row groups and framed ``tf.Example`` records into RecordBatches.

Both yield :class:`Piece` objects (a RecordBatch plus the rejected records), which
:mod:`beam_cross.job.readers` turns into chunks. Parquet is read by row group (a byte range of the file
reads the row groups that start in it) and keeps every Arrow type as written. TFRecord is read per
file: the framing (length, CRC of the length, data, CRC of the data) is checked record by record; a
record whose data CRC fails is rejected and the next one read, while a length whose CRC fails leaves
no way to find the next record, so the read fails, as TensorFlow's reader does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from google.protobuf.message import DecodeError

from beam_cross.core.arrow_values import is_list_type
from beam_cross.job import example_columns
from beam_cross.job.text_formats import OVERSIZED, PARSE, TYPE, UNKNOWN_COLUMN, one_batch, unknown_message
from beam_cross.job.tf_example import Example

try:  # the C CRC32C that Beam also prefers
    from google_crc32c import value as _crc32c
except ImportError:  # pragma: no cover - Beam's own fallback
    from apache_beam.io.tfrecordio import _default_crc32c_fn as _crc32c

BLOCK_BYTES = 8 << 20
RECORDS_PER_CHUNK = 20_000


class CorruptFile(IOError):
    """A file whose damage leaves no way to read the rest of it (the run stops with this error)."""


@dataclass
class Piece:
    """Rows read from one place of a file: ``positions[i]`` is the record number of row ``i``."""

    rows: pa.RecordBatch
    positions: np.ndarray | None  # None: row i is record first + i
    rejected: list = field(default_factory=list)  # (record number, reason, message, raw)
    first: int = 0  # the record number (0-based) of the first record of the piece
    records: int = 0  # records read (rows + rejected)
    progress: int = 0  # bytes (TFRecord) or rows (Parquet) of the input this piece stands for


# -- Parquet --------------------------------------------------------------------------------------------
def row_group_offset(row_group) -> int:
    """Where a row group starts in its file (its first column chunk's first page)."""
    column = row_group.column(0)
    if column.has_dictionary_page and column.dictionary_page_offset:
        return min(column.dictionary_page_offset, column.data_page_offset)
    return column.data_page_offset


def read_parquet(handle, schema: pa.Schema, start: int, stop: int, batch_rows: int = 1 << 16):
    """Pieces of the row groups of an open Parquet file that start in ``[start, stop)``."""
    parquet = pq.ParquetFile(handle)
    if parquet.schema_arrow.remove_metadata() != schema.remove_metadata():
        raise ValueError(f"this Parquet file's schema differs from the input schema: {parquet.schema_arrow} vs {schema}")
    first = 0
    for index in range(parquet.num_row_groups):
        group = parquet.metadata.row_group(index)
        if start <= row_group_offset(group) < stop:
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[index], use_threads=False):
                batch = batch.replace_schema_metadata(schema.metadata)
                yield Piece(batch, None, first=first, records=batch.num_rows, progress=batch.num_rows)
                first += batch.num_rows
        else:
            first += group.num_rows


# -- TFRecord framing -----------------------------------------------------------------------------------
def _masked_crc(data) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frames(handle, path: str, max_record: int):
    """``(record number, bytes or None, problem)`` for each record of an open TFRecord file."""
    buffer, position, offset, number = b"", 0, 0, 0

    def fill(needed):
        nonlocal buffer, position, offset
        if len(buffer) - position >= needed:
            return True
        offset += position
        buffer, position = buffer[position:], 0
        while len(buffer) < needed:
            data = handle.read(max(BLOCK_BYTES, needed - len(buffer)))
            if not data:
                return False
            buffer += data
        return True

    unpack, crc32c = struct.Struct("<QI").unpack_from, _crc32c
    while True:
        size = len(buffer)
        while position + 12 <= size:  # the common case, inlined: whole records already in the buffer
            length, length_crc = unpack(buffer, position)
            end = position + 16 + length
            crc = crc32c(buffer[position:position + 8])
            if end > size or length > max_record or ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF) != length_crc:
                break
            data = buffer[position + 12:end - 4]
            crc = crc32c(data)
            ok = ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF) == int.from_bytes(buffer[end - 4:end], "little")
            position = end
            yield number, data, None if ok else (PARSE, "corrupt record: its data checksum does not match")
            number += 1
        if not fill(12):
            if len(buffer) - position:
                yield number, None, (PARSE, f"truncated record at byte {offset + position} (the file ends inside it)")
            return
        length, length_crc = struct.unpack_from("<QI", buffer, position)
        if _masked_crc(buffer[position:position + 8]) != length_crc:
            raise CorruptFile(
                f"{path}: record {number} at byte {offset + position} has a corrupt length (its checksum does not "
                f"match), so the records after it cannot be found; the file is damaged (TensorFlow's reader stops "
                f"here too)."
            )
        if length > max_record:
            remaining = 12 + length + 4 - (len(buffer) - position)
            position = len(buffer)
            while remaining > 0:
                skipped = len(handle.read(min(remaining, BLOCK_BYTES)))
                if not skipped:
                    break
                offset += skipped
                remaining -= skipped
            yield number, None, (OVERSIZED, f"the record is {length} bytes, more than the limit of {max_record}")
            number += 1
            continue
        if not fill(12 + length + 4):
            yield number, None, (PARSE, f"truncated record at byte {offset + position} (the file ends inside it)")
            return
        data = buffer[position + 12:position + 12 + length]
        (data_crc,) = struct.unpack_from("<I", buffer, position + 12 + length)
        position += 12 + length + 4
        if _masked_crc(data) != data_crc:
            yield number, data, (PARSE, "corrupt record: its data checksum does not match")
        else:
            yield number, data, None
        number += 1


# -- tf.Example records to Arrow ------------------------------------------------------------------------
_ATTRS = {"bytes": "bytes_list", "int": "int64_list", "float": "float_list"}


def _kind_of(arrow_type) -> tuple[str, bool]:
    """("bytes" | "int" | "float", is_list) of a column type."""
    is_list = is_list_type(arrow_type)
    base = arrow_type.value_type if is_list else arrow_type
    if pa.types.is_integer(base) or pa.types.is_boolean(base):
        return "int", is_list
    if pa.types.is_floating(base):
        return "float", is_list
    return "bytes", is_list


def _values(features, specs):
    """One record's values in column order, or the problem that rejects the record."""
    row = []
    for name, kind, is_list, attr in specs:
        feature = features.get(name)
        if feature is None:
            row.append(None)
            continue
        values = getattr(feature, attr).value
        count = len(values)
        if count == 1:
            row.append([values[0]] if is_list else values[0])
        elif count:
            if not is_list:
                return None, (f"feature `{name}` has {count} values where its column holds one; declare it as a "
                              f"list with `--schema {name}:{'string' if kind == 'bytes' else kind}_list`")
            row.append(list(values))
        else:
            which = feature.WhichOneof("kind")
            if which is not None and which != attr and len(getattr(feature, which).value):
                return None, f"feature `{name}` holds a {which}, but its column is {kind}"
            row.append([] if is_list else None)
    return row, None


def decode_examples(records: list[tuple[int, bytes]], schema: pa.Schema):
    """(RecordBatch, record numbers of its rows, rejections) of ``(number, tf.Example bytes)`` records.

    Records in TensorFlow's layout are read by :func:`beam_cross.job.example_columns.decode` (NumPy, for
    all of them at once); the others by protobuf, one by one, which also tells why one is rejected.
    """
    specs = [(f.name, *_kind_of(f.type), f.type) for f in schema]
    arrays, irregular = example_columns.decode([record for _, record in records], specs)
    if irregular.all():
        return decode_examples_one_by_one(records, schema)
    numbers = np.fromiter((number for number, _ in records), np.int64, len(records))
    fast = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if not irregular.any():
        return fast, numbers, []
    batch, slow_numbers, rejected = decode_examples_one_by_one([records[i] for i in np.flatnonzero(irregular)], schema)
    numbers = np.concatenate((numbers[~irregular], slow_numbers))
    order = np.argsort(numbers, kind="stable")
    merged = pa.Table.from_batches([fast, batch]).take(pa.array(order))
    return one_batch(merged, schema), numbers[order], rejected


def decode_examples_one_by_one(records: list[tuple[int, bytes]], schema: pa.Schema):
    """:func:`decode_examples` with protobuf, record by record (the reference)."""
    specs = [(f.name, *_kind_of(f.type), _ATTRS[_kind_of(f.type)[0]]) for f in schema]
    names = frozenset(schema.names)
    rows, numbers, rejected = [], [], []
    for number, record in records:
        try:
            features = Example.FromString(record).features.feature
        except DecodeError as error:
            rejected.append((number, PARSE, f"not a tf.Example: {error}", record.hex()[:2000]))
            continue
        if not names.issuperset(features):
            unknown = [name for name in features if name not in names]
            rejected.append((number, UNKNOWN_COLUMN, unknown_message(unknown, schema), record.hex()[:2000]))
            continue
        row, problem = _values(features, specs)
        if problem:
            rejected.append((number, TYPE, problem, record.hex()[:2000]))
            continue
        rows.append(row)
        numbers.append(number)
    columns = list(zip(*rows)) if rows else [() for _ in specs]
    arrays, bad = [], np.zeros(len(numbers), bool)
    for (_, kind, is_list, _), values, field_ in zip(specs, columns, schema):
        array, problems = _column(values, field_, kind, is_list)
        arrays.append(array)
        for index, message in problems.items():
            if not bad[index]:
                bad[index] = True
                rejected.append((numbers[index], "encoding", message, None))
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    numbers = np.asarray(numbers, np.int64)
    if bad.any():
        batch, numbers = batch.filter(pa.array(~bad)), numbers[~bad]
    rejected.sort(key=lambda item: item[0])
    return batch, numbers, rejected


def _column(values, field_, kind, is_list):
    """An Arrow array of ``field_``'s type from decoded values; bytes that must be text are checked."""
    target = field_.type
    if kind != "bytes":
        return pa.array(values, target), {}
    base = target.value_type if is_list else target
    raw = pa.array(values, pa.list_(pa.binary()) if is_list else pa.binary())
    if pa.types.is_binary(base) or pa.types.is_large_binary(base):
        return raw.cast(target), {}
    try:
        return raw.cast(target), {}
    except pa.ArrowInvalid:
        problems, fixed = {}, []
        for index, value in enumerate(values):
            try:
                if value is not None:
                    [v.decode("utf-8") for v in value] if is_list else value.decode("utf-8")
                fixed.append(value)
            except UnicodeDecodeError:
                problems[index] = f"feature `{field_.name}` must be UTF-8 text. Received: value={value!r}"[:2000]
                fixed.append(None)
        return pa.array(fixed, raw.type).cast(target), problems


def read_tfrecord(handle, path: str, schema: pa.Schema, max_record: int, records_per_chunk: int = RECORDS_PER_CHUNK):
    """Pieces of ``records_per_chunk`` records of an open TFRecord file."""
    pending, bad, first, number = [], [], 0, -1
    for number, record, problem in tfrecord_frames(handle, path, max_record):
        if problem is None:
            pending.append((number, record))
        else:
            bad.append((number, problem[0], problem[1], None if record is None else record.hex()[:2000]))
        if number - first + 1 >= records_per_chunk:
            yield _piece(pending, bad, schema, first)
            first = number + 1
            pending, bad = [], []
    if pending or bad or number < 0:
        yield _piece(pending, bad, schema, first)


def _piece(pending, bad, schema, first):
    batch, numbers, rejected = decode_examples(pending, schema)
    rejected = sorted(rejected + bad, key=lambda item: item[0])
    return Piece(batch, numbers, rejected, first=first, records=len(pending) + len(bad))


def infer_example_types(records: list[bytes], declared=()) -> dict[str, pa.DataType | None]:
    """Arrow types of the features of sampled tf.Examples: a list type if any holds other than one value."""
    seen: dict[str, tuple[set, bool, bool]] = {}
    for record in records:
        try:
            features = Example.FromString(record).features.feature
        except DecodeError:
            continue
        for name, feature in features.items():
            kinds, is_list, text = seen.get(name, (set(), False, True))
            which = feature.WhichOneof("kind")
            values = getattr(feature, which).value if which else ()
            if which:
                kinds.add(which)
            if which == "bytes_list":
                try:
                    for value in values:
                        value.decode("utf-8")
                except UnicodeDecodeError:
                    text = False
            seen[name] = (kinds, is_list or len(values) != 1, text)
    types = {}
    for name, (kinds, is_list, text) in sorted(seen.items()):  # a map's order is no order
        if name in declared:
            types[name] = None
            continue
        if len(kinds) > 1:
            raise ValueError(f"feature `{name}` holds {sorted(kinds)} in different records; declare its type with `--schema`")
        kind = kinds.pop() if kinds else "bytes_list"
        base = {"int64_list": pa.int64(), "float_list": pa.float32()}.get(kind, pa.string() if text else pa.binary())
        types[name] = pa.list_(base) if is_list else base
    return types

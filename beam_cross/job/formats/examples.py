"""``tf.Example`` records without TensorFlow: the message, records to Arrow columns and back.

The layout is that of ``tensorflow/core/example/{example,feature}.proto`` (field numbers and types);
``protobuf`` (a Beam dependency) does the parsing, so reading and writing TFRecords of tf.Examples
needs no TensorFlow install. ``decode_examples`` reads many records at once (the NumPy wire reader
of :mod:`beam_cross.job.formats.example_wire` for TensorFlow's layout, protobuf for the others and
to say why a record is rejected); ``encode_batch`` writes a whole RecordBatch column by column (the
same messages as ``encode_example``, built with Arrow kernels). The file framing is
:mod:`beam_cross.job.formats.tfrecord`'s.

>>> record = encode_example({"country": "fr", "hour": 13, "tags": ["a", "b"], "gone": None})
>>> sorted(decode_example(record, {}).items())  # a None value is an absent feature
[('country', 'fr'), ('hour', 13), ('tags', ['a', 'b'])]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from beam_cross.core.arrow_values import is_list_type
from beam_cross.job.formats import example_wire
from beam_cross.job.formats.base import ENCODING, PARSE, TYPE, UNKNOWN_COLUMN, one_batch, unknown_message


def _example_class():
    # The message layout of tensorflow/core/example/{example,feature}.proto, declared field by field
    # in a private pool (package name differs from TF's so both can be loaded in one process).
    proto = descriptor_pb2.FileDescriptorProto(name="beam_cross_example.proto", package="beam_cross_example", syntax="proto3")
    label = descriptor_pb2.FieldDescriptorProto
    for name, kind in (("BytesList", label.TYPE_BYTES), ("FloatList", label.TYPE_FLOAT), ("Int64List", label.TYPE_INT64)):
        message = proto.message_type.add(name=name)
        message.field.add(name="value", number=1, label=label.LABEL_REPEATED, type=kind)
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (name, type_name) in enumerate((("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")), 1):
        feature.field.add(name=name, number=number, label=label.LABEL_OPTIONAL, type=label.TYPE_MESSAGE,
                          type_name=f".beam_cross_example.{type_name}", oneof_index=0)
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=label.LABEL_OPTIONAL, type=label.TYPE_STRING)
    entry.field.add(name="value", number=2, label=label.LABEL_OPTIONAL, type=label.TYPE_MESSAGE, type_name=".beam_cross_example.Feature")
    features.field.add(name="feature", number=1, label=label.LABEL_REPEATED, type=label.TYPE_MESSAGE,
                       type_name=".beam_cross_example.Features.FeatureEntry")
    example = proto.message_type.add(name="Example")
    example.field.add(name="features", number=1, label=label.LABEL_OPTIONAL, type=label.TYPE_MESSAGE, type_name=".beam_cross_example.Features")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("beam_cross_example.Example"))


Example = _example_class()


def _text(value: bytes):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def decode_example(record: bytes, schema: dict[str, str]) -> dict:
    example = Example.FromString(record)
    row = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "bytes_list":
            values = [_text(v) for v in feature.bytes_list.value]
        elif kind == "int64_list":
            values = list(feature.int64_list.value)
        elif kind == "float_list":
            values = list(feature.float_list.value)
        else:
            values = []
        if schema.get(name, "").endswith("_list") or len(values) > 1:
            row[name] = values
        else:
            row[name] = values[0] if values else None
    return row


def encode_example(row: dict) -> bytes:
    example = Example()
    for name, value in row.items():
        if value is None:
            continue  # a missing value is an absent feature
        values = value if isinstance(value, (list, tuple)) else [value]
        feature = example.features.feature[name]
        if values and all(isinstance(v, int) for v in values):  # bools are ints, as in tf.train.Int64List
            feature.int64_list.value.extend(int(v) for v in values)
        elif values and all(isinstance(v, (int, float)) for v in values):
            feature.float_list.value.extend(float(v) for v in values)
        else:
            feature.bytes_list.value.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values)
    return example.SerializeToString()


# -- whole RecordBatches, column by column ------------------------------------------------------------
_EMPTY = pa.scalar(b"", pa.large_binary())


def _binary(data: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """A binary array from concatenated ``data`` bytes and per-value ``lengths``."""
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(lengths), [None, pa.py_buffer(offsets),
                                                                             pa.py_buffer(np.ascontiguousarray(data))])


def varint_sizes(values) -> np.ndarray:
    unsigned = np.asarray(values, np.int64).view(np.uint64)
    sizes = np.ones(len(unsigned), np.int64)
    top = int(unsigned.max()) if len(unsigned) else 0
    for k in range(1, 10):
        if top < 1 << (7 * k):
            break
        sizes += unsigned >= np.uint64(1 << (7 * k))
    return sizes


def varints(values) -> pa.Array:
    """The protobuf varint of each int64 (negatives as 10 bytes, two's complement), as binary values."""
    unsigned = np.asarray(values, np.int64).view(np.uint64)
    sizes = varint_sizes(unsigned.view(np.int64))
    if not len(sizes) or sizes.max() == 1:
        return _binary(unsigned.astype(np.uint8), sizes)
    offsets = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    out = np.empty(offsets[-1], np.uint8)
    for k in range(int(sizes.max())):
        rows = sizes > k
        byte = (unsigned[rows] >> np.uint64(7 * k)) & np.uint64(0x7F)
        out[offsets[:-1][rows] + k] = byte.astype(np.uint8) | np.where(sizes[rows] > k + 1, 0x80, 0).astype(np.uint8)
    return _binary(out, sizes)


def _join(*parts) -> pa.Array:
    parts = [pa.scalar(p, pa.large_binary()) if isinstance(p, bytes) else p.cast(pa.large_binary()) for p in parts]
    return pc.binary_join_element_wise(*parts, _EMPTY)


def _lengths(array) -> np.ndarray:
    return pc.fill_null(pc.binary_length(array), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def _payload(column: pa.Array):
    """(per-row payload of the Feature's list message, Feature tag, packed) or None if not column-wise."""
    kind = column.type
    listed = is_list_type(kind)
    values = column.flatten() if listed else column
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    base = values.type
    if values.null_count:
        return None
    if pa.types.is_integer(base) or pa.types.is_boolean(base):
        encoded, tag, packed = varints(values.cast(pa.int64()).to_numpy(zero_copy_only=False)), b"\x1a", True
    elif pa.types.is_floating(base):
        floats = values.cast(pa.float32()).to_numpy(zero_copy_only=False).astype("<f4")
        encoded, tag, packed = _binary(floats.view(np.uint8), np.full(len(floats), 4)), b"\x12", True
    elif pa.types.is_string(base) or pa.types.is_large_string(base) or pa.types.is_binary(base) or pa.types.is_large_binary(base):
        values = values.cast(pa.large_binary())
        encoded, tag, packed = _join(b"\x0a", varints(_lengths(values)), values), b"\x0a", False
    else:
        return None
    if listed:
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        encoded = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), encoded), _EMPTY)
        empty = lengths == 0
    else:
        empty = None
    return encoded, tag, packed, empty


def _entries(column: pa.Array, name: str) -> pa.Array:
    """The ``Features.feature`` map entry of each row (empty where the value is null: an absent feature)."""
    key = name.encode("utf-8")
    key = b"\x0a" + _varint(len(key)) + key + b"\x12"
    found = _payload(column)
    if found is None:  # a type without a column-wise path: the row codec, one value at a time
        features = pa.array([None if v is None else
                             Example.FromString(encode_example({name: v})).features.feature[name].SerializeToString()
                             for v in column.to_pylist()], pa.large_binary())
        size = _lengths(features)
        body = _join(key, varints(size), features)
    else:
        payload, tag, packed, empty = found
        size = _lengths(payload)
        if packed:  # Int64List / FloatList: field 1, packed
            inner = 1 + varint_sizes(size) + size
            packing = [b"\x0a", varints(size)]
        else:  # BytesList: its values are the payload
            inner, packing = size, []
        feature = 1 + varint_sizes(inner) + inner
        parts = [key, varints(feature), tag, varints(inner), *packing, payload]
        body = _join(*parts)
        if empty is not None and empty.any():  # an empty list: an empty BytesList, as encode_example writes it
            body = pc.if_else(pa.array(empty), pa.scalar(key + b"\x02\x0a\x00", pa.large_binary()), body)
    entry = _join(b"\x0a", varints(_lengths(body)), body)
    return pc.if_else(column.is_valid(), entry, _EMPTY) if column.null_count else entry


def encode_batch(batch: pa.RecordBatch) -> pa.Array:
    """One serialized ``tf.Example`` per row of ``batch``, as ``encode_example`` writes each row."""
    entries = [_entries(column, name) for name, column in zip(batch.schema.names, batch.columns)]
    features = _join(*entries) if entries else pa.array([b""] * batch.num_rows, pa.large_binary())
    return _join(b"\x0a", varints(_lengths(features)), features)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


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

    Records in TensorFlow's layout are read by :func:`beam_cross.job.example_wire.decode` (NumPy, for
    all of them at once); the others by protobuf, one by one, which also tells why one is rejected.
    """
    specs = [(f.name, *_kind_of(f.type), f.type) for f in schema]
    arrays, irregular = example_wire.decode([record for _, record in records], specs)
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
                rejected.append((numbers[index], ENCODING, message, None))
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

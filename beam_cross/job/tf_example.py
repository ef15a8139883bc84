"""``tf.Example`` records without TensorFlow: the message declared field by field for ``protobuf``.

The layout is that of ``tensorflow/core/example/{example,feature}.proto`` (field numbers and types);
``protobuf`` (a Beam dependency) does the parsing, so reading and writing TFRecords of tf.Examples
needs no TensorFlow install. Rows are dicts (see :mod:`beam_cross.job.io`). ``encode_batch`` writes a
whole Arrow RecordBatch column by column (the same messages, built with Arrow kernels), and
``tfrecord_frames`` frames records as a TFRecord file.

>>> record = encode_example({"country": "fr", "hour": 13, "tags": ["a", "b"], "gone": None})
>>> sorted(decode_example(record, {}).items())  # a None value is an absent feature
[('country', 'fr'), ('hour', 13), ('tags', ['a', 'b'])]
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from beam_cross.core.arrow_values import is_list_type


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


def tfrecord_frames(records: pa.Array) -> bytes:
    """The records of a (large) binary array framed as the bytes of a TFRecord file."""
    from apache_beam.io.tfrecordio import _TFRecordUtil

    masked_crc = _TFRecordUtil._masked_crc32c
    offsets = np.frombuffer(records.buffers()[1], np.int64, len(records) + 1, records.offset * 8).tolist()
    data = records.buffers()[2].to_pybytes()
    pack, length_crcs, parts = struct.pack, {}, []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        record = data[start:stop]
        header = length_crcs.get(stop - start)
        if header is None:
            length = pack("<Q", stop - start)
            header = length_crcs[stop - start] = length + pack("<I", masked_crc(length))
        parts += (header, record, pack("<I", masked_crc(record)))
    return b"".join(parts)

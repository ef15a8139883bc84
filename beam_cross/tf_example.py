"""``tf.Example`` records without TensorFlow: the message declared field by field for ``protobuf``.

The layout is that of ``tensorflow/core/example/{example,feature}.proto`` (field numbers and types);
``protobuf`` (a Beam dependency) does the parsing, so reading and writing TFRecords of tf.Examples
needs no TensorFlow install. Rows are dicts (see :mod:`beam_cross.io`).

>>> record = encode_example({"country": "fr", "hour": 13, "tags": ["a", "b"], "gone": None})
>>> sorted(decode_example(record, {}).items())  # a None value is an absent feature
[('country', 'fr'), ('hour', 13), ('tags', ['a', 'b'])]
"""

from __future__ import annotations

import struct

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


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


def tfrecord_frame(record: bytes) -> bytes:
    """``record`` framed as in a TFRecord file: length, its masked CRC-32C, the data, its masked CRC-32C."""
    from apache_beam.io.tfrecordio import _TFRecordUtil

    masked_crc = _TFRecordUtil._masked_crc32c
    length = struct.pack("<Q", len(record))
    return b"".join((length, struct.pack("<I", masked_crc(length)), record, struct.pack("<I", masked_crc(record))))

"""TFRecord files of ``tf.Example`` records: the framing, read record by record, and written.

A record is framed as its length (uint64 LE), the masked CRC32C of the length, the data, and the
masked CRC32C of the data. Reading checks both: a record whose data CRC fails is rejected and the
next one read; a length whose CRC fails leaves no way to find the next record, so the file cannot be
read on (a :class:`~beam_cross.job.errors.ReadError`, as TensorFlow's reader stops there too). A file
is read whole, by one worker. The records become Arrow columns in :mod:`beam_cross.job.formats.examples`.

>>> import io
>>> data = frames(pa.array([b"abc", b""], pa.large_binary()))
>>> [(number, record, problem) for number, record, problem in read_frames(io.BytesIO(data), "x.tfrecord", 100)]
[(0, b'abc', None), (1, b'', None)]
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa

from beam_cross.job.errors import ReadError
from beam_cross.job.formats import compression, examples
from beam_cross.job.formats.base import BLOCK_BYTES, OVERSIZED, PARSE, Facts, Format, Piece, Writer

RECORDS_PER_PIECE = 20_000
SAMPLE_RECORDS = 10_000


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def _python_crc32c(data) -> int:
    crc, table = 0xFFFFFFFF, _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the C CRC32C (google-crc32c comes with Beam's GCP extra); the table above otherwise
    from google_crc32c import value as crc32c
except ImportError:  # pragma: no cover - depends on the install
    crc32c = _python_crc32c


def masked_crc(data) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_frames(handle, path: str, max_record: int, block_bytes: int = BLOCK_BYTES):
    """``(record number, bytes or None, problem)`` for each record of an open TFRecord file."""
    buffer, position, offset, number = b"", 0, 0, 0

    def fill(needed):
        nonlocal buffer, position, offset
        if len(buffer) - position >= needed:
            return True
        offset += position
        buffer, position = buffer[position:], 0
        while len(buffer) < needed:
            data = handle.read(max(block_bytes, needed - len(buffer)))
            if not data:
                return False
            buffer += data
        return True

    unpack = struct.Struct("<QI").unpack_from
    while True:
        size = len(buffer)
        while position + 12 <= size:  # the common case: whole records already in the buffer
            length, length_crc = unpack(buffer, position)
            end = position + 16 + length
            if end > size or length > max_record or masked_crc(buffer[position:position + 8]) != length_crc:
                break
            data = buffer[position + 12:end - 4]
            ok = masked_crc(data) == int.from_bytes(buffer[end - 4:end], "little")
            position = end
            yield number, data, None if ok else (PARSE, "corrupt record: its data checksum does not match")
            number += 1
        if not fill(12):
            if len(buffer) - position:
                yield number, None, (PARSE, f"truncated record at byte {offset + position} (the file ends inside it)")
            return
        length, length_crc = unpack(buffer, position)
        if masked_crc(buffer[position:position + 8]) != length_crc:
            raise ReadError(
                f"{path}: record {number} at byte {offset + position} has a corrupt length (its checksum does not "
                f"match), so the records after it cannot be found; the file is damaged (TensorFlow's reader stops "
                f"here too)."
            )
        if length > max_record:
            remaining = 12 + length + 4 - (len(buffer) - position)
            position = len(buffer)
            while remaining > 0:
                skipped = len(handle.read(min(remaining, block_bytes)))
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
        yield number, data, None if masked_crc(data) == data_crc else (PARSE, "corrupt record: its data checksum does not match")
        number += 1


def frames(records: pa.Array) -> bytes:
    """The records of a large binary array framed as the bytes of a TFRecord file."""
    offsets = np.frombuffer(records.buffers()[1], np.int64, len(records) + 1, records.offset * 8).tolist()
    data = records.buffers()[2].to_pybytes() if records.buffers()[2] is not None else b""
    pack, headers, parts = struct.pack, {}, []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        record = data[start:stop]
        header = headers.get(stop - start)
        if header is None:
            length = pack("<Q", stop - start)
            header = headers[stop - start] = length + pack("<I", masked_crc(length))
        parts += (header, record, pack("<I", masked_crc(record)))
    return b"".join(parts)


def _piece(pending, bad, schema, first):
    batch, numbers, rejected = examples.decode_examples(pending, schema)
    rejected = sorted(rejected + bad, key=lambda item: item[0])
    return Piece(batch, numbers, rejected, first=first, records=len(pending) + len(bad))


class TfrecordFormat(Format):
    name = "tfrecord"
    title = "TFRecord"
    extensions = (".tfrecord", ".tfrecords")
    typed_values = True

    def inspect(self, path, sample_bytes, declared):
        records, size = [], 0
        with compression.open_stream(path) as handle:
            try:
                for _, record, problem in read_frames(handle, path, 16 << 20):
                    if problem is None:
                        records.append(record)
                        size += len(record)
                    if size > sample_bytes or len(records) >= SAMPLE_RECORDS:
                        break
            except ReadError:
                pass  # the read reports it
        types = examples.infer_example_types(records, declared)
        return Facts(tuple(types), types)

    def read(self, handle, start, stop, schema, extent, *, context):
        pending, bad, first, number = [], [], 0, -1
        for number, record, problem in read_frames(handle, context.path, context.max_record_bytes, context.block_bytes):
            if problem is None:
                pending.append((number, record))
            else:
                bad.append((number, problem[0], problem[1], None if record is None else record.hex()[:2000]))
            if number - first + 1 >= RECORDS_PER_PIECE:
                yield _piece(pending, bad, schema, first)
                first = number + 1
                pending, bad = [], []
        if pending or bad or number < 0:
            yield _piece(pending, bad, schema, first)

    def writer(self, path):
        return TfrecordWriter(path)


class TfrecordWriter(Writer):
    """``tf.Example`` records, encoded column by column (:func:`examples.encode_batch`)."""

    def _write(self, batch):
        self._handle.write(frames(examples.encode_batch(batch)))


FORMAT = TfrecordFormat()

"""Compressed inputs as streams that must end: gzip, bzip2, xz / lzma, zstd and deflate.

``open_stream(path)`` opens a file for reading, decompressing it when its name ends in a codec's
extension (those Beam detects). A compressed stream is read to its end marker: a stream cut short
(no gzip trailer, no last bzip2 / xz / zstd frame) or damaged raises
:class:`~beam_cross.job.errors.ReadError` naming the file and the byte, never a short read. Streams
of several members (``cat a.gz b.gz``) are read member after member; zero bytes after the last one
(tape padding) are ignored. ``raw_bytes`` counts the file bytes consumed, so a whole-file read
reports exactly what it covered.

>>> import gzip, io
>>> data = gzip.compress(b"a,b\\n1,2\\n")
>>> Decompressed(io.BytesIO(data), "gzip", "x.csv.gz").read()
b'a,b\\n1,2\\n'
>>> Decompressed(io.BytesIO(data[:-4]), "gzip", "x.csv.gz").read()
Traceback (most recent call last):
...
beam_cross.job.errors.ReadError: x.csv.gz: the gzip stream ends at byte 24 without its end marker: the file is cut short or damaged
"""

from __future__ import annotations

import bz2
import lzma
import zlib

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_cross.job.errors import ReadError

CODECS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".lzma": "xz", ".zst": "zstd", ".zstd": "zstd",
          ".deflate": "deflate"}
_RAW_READ = 1 << 20


def codec_of(path: str) -> str | None:
    """The codec of a file from its name (``None``: not compressed)."""
    lower = path.lower()
    for extension, codec in CODECS.items():
        if lower.endswith(extension):
            return codec
    return None


def without_codec(path: str) -> str:
    """The name without its codec's extension (``a.csv.gz`` -> ``a.csv``)."""
    codec = codec_of(path)
    return path[: path.lower().rfind(".")] if codec else path


def _decompressor(codec: str):
    if codec == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if codec == "deflate":
        return zlib.decompressobj()
    if codec == "bzip2":
        return bz2.BZ2Decompressor()
    if codec == "xz":
        return lzma.LZMADecompressor()
    import zstandard  # an Apache Beam dependency

    return zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()


class Decompressed:
    """A file-like ``read(n)`` over a compressed handle; ``raw_bytes`` is what it consumed of the file."""

    def __init__(self, raw, codec: str, path: str):
        self._raw, self.codec, self.path = raw, codec, path
        self._decoder = None
        self._buffer = bytearray()
        self._done = False
        self._error = None
        self.raw_bytes = 0

    def _fill(self, wanted: int) -> None:
        while len(self._buffer) < wanted and not self._done:
            data = self._raw.read(_RAW_READ)
            if not data:
                self._done = True
                if self._decoder is not None:  # raised once the bytes before it are read
                    self._error = ReadError(f"{self.path}: the {self.codec} stream ends at byte {self.raw_bytes} "
                                            "without its end marker: the file is cut short or damaged")
                return
            start = self.raw_bytes
            self.raw_bytes += len(data)
            while data:
                if self._decoder is None:
                    if not data.strip(b"\0"):
                        break  # zero padding after the last member
                    self._decoder = _decompressor(self.codec)
                try:
                    self._buffer += self._decoder.decompress(data)
                except Exception as error:  # zlib.error, OSError, lzma.LZMAError, zstandard.ZstdError
                    raise ReadError(f"{self.path}: the {self.codec} stream is damaged near byte {start}: {error}") from None
                if not self._decoder.eof:
                    break
                data = self._decoder.unused_data
                self._decoder = None
                if self.codec == "deflate" and data.strip(b"\0"):
                    raise ReadError(f"{self.path}: {len(data)} bytes after the end of the deflate stream")

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # to the end: a stream without its end is an error
            while not self._done:
                self._fill(len(self._buffer) + _RAW_READ)
            if self._error is not None:
                raise self._error
            size = len(self._buffer)
        else:
            self._fill(size)
        if not self._buffer and self._error is not None:
            raise self._error
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def close(self) -> None:
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def head(path: str, size: int) -> bytes:
    """Up to ``size`` bytes of the start of a file, decompressed; a damaged stream gives what comes
    before the damage (the read of the file reports the damage)."""
    parts, got = [], 0
    with open_stream(path) as handle:
        try:
            while got < size:
                part = handle.read(min(size - got, 1 << 16))
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except ReadError:
            pass
    return b"".join(parts)


def open_stream(path: str):
    """``path`` opened by its literal name: a raw handle, or a :class:`Decompressed` one."""
    try:
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as error:  # a vanished file, no permission: a read error of this file
        raise ReadError(f"{path}: cannot be opened: {error}") from None
    codec = codec_of(path)
    return Decompressed(raw, codec, path) if codec else raw

"""The file formats of ``beam-cross``, registered in one place.

Each module holds one format: :mod:`~beam_cross.job.formats.csv`, :mod:`~beam_cross.job.formats.jsonl`,
:mod:`~beam_cross.job.formats.parquet` and :mod:`~beam_cross.job.formats.tfrecord`, each exposing one
:class:`~beam_cross.job.formats.base.Format` object (its extensions, type inference from a file's
head, ``read`` and a writer). What they share is in :mod:`~beam_cross.job.formats.base` (the
interface, pieces, reasons, constants), :mod:`~beam_cross.job.formats.text` (records of text
ranges) and :mod:`~beam_cross.job.formats.compression` (streams that must end). Planning, reading
and writing look formats up here and never branch on a format's name.

>>> format_of("logs/clicks-01.csv.gz").name, get("tfrecord").suffix
('csv', '.tfrecord')
"""

from __future__ import annotations

import os

from beam_cross.job.errors import InputError
from beam_cross.job.formats import compression
from beam_cross.job.formats.base import Format
from beam_cross.job.formats.csv import FORMAT as CSV
from beam_cross.job.formats.jsonl import FORMAT as JSONL
from beam_cross.job.formats.parquet import FORMAT as PARQUET
from beam_cross.job.formats.tfrecord import FORMAT as TFRECORD

REGISTRY: dict[str, Format] = {f.name: f for f in (CSV, JSONL, PARQUET, TFRECORD)}
FORMATS = tuple(REGISTRY)
_BY_EXTENSION = {extension: f for f in REGISTRY.values() for extension in f.extensions}


def get(name: str) -> Format:
    """The format called ``name``; a ValueError naming the formats otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"`fmt` must be one of {FORMATS}. Received: fmt={name!r}") from None


def open_writer(path: str, fmt: str, schema=None):
    """A writer of format ``fmt`` at ``path``; with ``schema``, the file is valid even if no row is written."""
    writer = get(fmt).writer(path)
    if schema is not None:
        writer.start(schema)
    return writer


def format_of(path: str) -> Format:
    """The format of a file from its extension, under any compression (``.gz``, ``.bz2``...)."""
    extension = os.path.splitext(compression.without_codec(path).lower())[1]
    if extension not in _BY_EXTENSION:
        raise InputError(f"Cannot tell the format of {path!r} from its extension; pass `--input_format` "
                         f"(one of {', '.join(FORMATS)}).")
    return _BY_EXTENSION[extension]

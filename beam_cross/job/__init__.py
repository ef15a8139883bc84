"""The ``beam-cross`` command: flags, planning, columnar readers and writers, the pipeline, the report, the commit.

It sits on top: it imports :mod:`beam_cross.core` and :mod:`beam_cross.beam`, and nothing imports it.
"""

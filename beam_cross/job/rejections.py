"""The one record shape of the ``beam-cross`` rejected-rows output, for rows not read and rows not crossed."""

from __future__ import annotations


def rejection(reason, message, row, *, source=None, feature=None, cross=None) -> dict:
    """The one record shape of the rejected-rows output (JSON-ready)."""
    return {
        "reason": reason,
        "message": message,
        "feature": feature,
        "cross": cross,
        "source": source,
        "row": row,
    }

"""Beam ``MLTransform`` provider: ``HashedCrossing`` crosses several columns into one id column.

MLTransform's ``TFTOperation`` sees one column at a time, so a cross is a provider of its own::

    with beam.Pipeline() as p:
        ids = (p | beam.Create(rows)
                 | MLTransform(write_artifact_location=d)
                   .with_transform(HashedCrossing(columns=["country", "hour"], num_bins=1000)))

A later pipeline with ``MLTransform(read_artifact_location=d)`` gives the same ids. Input elements
are dicts or ``beam.Row`` s; each comes out as the same kind with one more field, ``name``
(``"country_X_hour"`` by default): an ``int`` per row, or a ``list`` of ints when a column holds
lists or arrays (the cartesian cross; an empty list gives ``[]``). MLTransform's TFT operations
output arrays, so a cross placed after one (say ``ComputeAndApplyVocabulary``) gives lists. Ids are
bit for bit Keras ``HashedCrossing``.

Artifacts are readable JSON, no pickled code: MLTransform's attribute file stores this provider's
transform as ``{"py/object": "beam_cross.beam.mltransform.CrossColumns", "py/state": {"cross": {...}, ...}}``
and each cross also writes ``cross.json`` (``Cross.to_json()``) in its artifact directory; the read
pipeline crosses with what that file says.

A row with a missing column or a value that cannot be crossed raises :class:`beam_cross.FeatureError`
(naming feature, problem, value); with ``MLTransform(...).with_exception_handling()`` it goes to the
errors output instead, with its message.
"""

from __future__ import annotations

import functools
import json
import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.transforms.base import ArtifactMode, MLTransformProvider

from beam_cross.beam.transforms import to_row
from beam_cross.core.elements import ElementCrosser
from beam_cross.core.spec import Cross

CROSS_FILE = "cross.json"
_BATCH_SIZE = 1024


class HashedCrossing(MLTransformProvider):
    """An MLTransform provider crossing ``columns`` into ``num_bins`` bins.

    Args:
        columns: two or more column names, in crossing order.
        num_bins: the number of bins (``0``: the whole hash modulo ``2**63 - 1``).
        name: the output column; defaults to ``"_X_".join(columns)``.
        hash_key: the int64 seed; ``None`` means TF's default.

    >>> HashedCrossing(columns=["a", "b"], num_bins=10).cross.name
    'a_X_b'
    """

    def __init__(self, columns, num_bins, *, name=None, hash_key=None):
        self.cross = Cross(columns, num_bins, name=name, hash_key=hash_key)
        self.columns = list(self.cross.features)

    def get_ptransform_for_processing(self, **kwargs) -> beam.PTransform:
        artifact_location = kwargs.get("artifact_location")
        if not artifact_location:
            raise ValueError(f"`artifact_location` must be given. Received: artifact_location={artifact_location!r}")
        return CrossColumns(
            self.cross, artifact_location=artifact_location,
            artifact_mode=kwargs.get("artifact_mode", ArtifactMode.PRODUCE),
        )


def cross_elements(cross: Cross, elements: list) -> list:
    """The elements (dicts or Rows), each with its ids under ``cross.name``, crossed by the one
    crossing path (:class:`~beam_cross.core.elements.ElementCrosser`).

    A bad value raises :class:`FeatureError` naming the feature, the cross, the problem and the value;
    an element that is not a row raises ``TypeError``.
    """
    return _crosser(cross).cross_elements(list(elements))[0]


@functools.lru_cache(maxsize=64)
def _crosser(cross: Cross) -> ElementCrosser:
    """One crosser per cross, not one per batch (or per row, with exception handling)."""
    return ElementCrosser([cross], raise_errors=True, make_row=to_row)


class CrossColumns(beam.PTransform):
    """The PTransform behind :class:`HashedCrossing`; its saved state is a plain config."""

    def __init__(self, cross: Cross, *, artifact_location: str, artifact_mode: str = ArtifactMode.PRODUCE):
        super().__init__()
        self.cross = cross
        self.artifact_location = artifact_location
        self.artifact_mode = artifact_mode
        self._exception_handling_args = None

    def default_label(self):  # MLTransform applies its transforms without labels: one per cross
        return f"HashedCrossing[{self.cross.name}]"

    # jsonpickle (MLTransform's attribute file) and pickle keep only this readable state.
    def __getstate__(self):
        return {"cross": self.cross.to_dict(), "artifact_location": self.artifact_location,
                "artifact_mode": self.artifact_mode}

    def __setstate__(self, state):
        self.__init__(Cross.from_dict(state["cross"]), artifact_location=state["artifact_location"],
                      artifact_mode=state["artifact_mode"])

    def with_exception_handling(self, *, exc_class=Exception, use_subprocess=False, threshold=1):
        """Rows that fail go to a second output, as ``ParDo.with_exception_handling`` does."""
        self._exception_handling_args = {"exc_class": exc_class, "use_subprocess": use_subprocess,
                                         "threshold": threshold}
        return self

    def _artifact_cross(self) -> Cross:
        path = os.path.join(self.artifact_location, CROSS_FILE)
        if self.artifact_mode == ArtifactMode.PRODUCE:
            if not FileSystems.exists(self.artifact_location):
                FileSystems.mkdirs(self.artifact_location)
            with FileSystems.create(path) as file:
                file.write(json.dumps(self.cross.to_dict(), indent=2).encode())
            return self.cross
        if not FileSystems.exists(path):
            raise FileNotFoundError(f"The artifact of cross `{self.cross.name}` is missing: {path}")
        with FileSystems.open(path) as file:
            saved = Cross.from_dict(json.loads(file.read().decode()))
        if saved != self.cross:
            raise ValueError(
                f"The artifact {path} describes cross {saved.to_dict()}, but MLTransform's attributes say "
                f"{self.cross.to_dict()}"
            )
        return saved

    def expand(self, pcoll):
        cross = self._artifact_cross()
        if self._exception_handling_args is not None:
            # One row at a time, so that a bad row fails alone and lands in the errors output.
            return pcoll | "CrossRows" >> beam.Map(lambda e: cross_elements(cross, [e])[0]).with_exception_handling(
                **self._exception_handling_args
            )
        return (
            pcoll
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=_BATCH_SIZE)
            | "Cross" >> beam.FlatMap(lambda batch: cross_elements(cross, list(batch)))
        )

"""Old home of :mod:`beam_cross.beam.mltransform`, kept because MLTransform artifacts name their classes by path.

Artifacts written before the move store ``beam_cross.mltransform.CrossColumns``; this module lets them load.
"""

from beam_cross.beam.mltransform import CrossColumns, HashedCrossing

__all__ = ["CrossColumns", "HashedCrossing"]

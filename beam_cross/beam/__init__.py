"""The Beam front door: ``CrossFeatures`` with its elements and schemas, MLTransform and the Beam YAML provider.

It imports Beam and :mod:`beam_cross.core`; ``CrossFeatures(engine="tensorflow")`` alone loads
:mod:`beam_cross.tf.engine`, on first use. It never imports :mod:`beam_cross.job`. Importing it drops
the few lines Beam prints that a user cannot act on (:mod:`beam_cross.core.beam_notices`), before Beam loads.
"""

from beam_cross.core.beam_notices import drop_beam_notices

drop_beam_notices()

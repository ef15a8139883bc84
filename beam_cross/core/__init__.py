"""The crossing core: fingerprints, feature columns, the fold, ``Cross``, the value rule, batches, statistics.

It imports NumPy, pyarrow, pyfarmhash and datasketches only: no Beam, no TensorFlow, no other ``beam_cross`` layer.
"""

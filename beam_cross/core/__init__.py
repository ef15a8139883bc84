"""The crossing core: fingerprints, feature columns, the fold, ``Cross``, the value rule, batches, statistics.

It imports NumPy, pyarrow, pyfarmhash and datasketches only: no Beam, no TensorFlow, no other ``beam_cross`` layer.

``beam_cross.core.KERNEL`` names the kernel in use: ``"c"`` (the compiled extension) or ``"numpy"``
(its fallback; see :mod:`beam_cross.core._fingerprint`).
"""


def __getattr__(name):
    if name == "KERNEL":  # read when asked: tests switch kernels
        from beam_cross.core import _fingerprint

        return _fingerprint.KERNEL
    raise AttributeError(f"module 'beam_cross.core' has no attribute {name!r}")

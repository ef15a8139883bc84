"""``python -m beam_cross``: the ``beam-cross`` command."""

import sys

from beam_cross.job.cli import main

if __name__ == "__main__":
    sys.exit(main())

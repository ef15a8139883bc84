"""Build script: the optional compiled kernel; metadata is in pyproject.toml. Dataflow's ``--setup_file`` calls it too.

The kernel (``beam_cross/core/_kernel.c``) is optional: where it does not compile (no compiler, no
Python headers), the install goes on and the package uses its NumPy path.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "beam_cross.core._kernel",
            ["beam_cross/core/_kernel.c"],
            optional=True,
            extra_compile_args=["-O3"] if __import__("sys").platform != "win32" else [],
        )
    ]
)

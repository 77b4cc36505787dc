"""Build hook for kprod's optional C accelerator, ``kprod._speedups``.

Everything else about the package is in pyproject.toml. The extension is
``optional``: without a C compiler (or Python headers) the build skips it and
kprod runs its pure-Python code (see ``kprod._native``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kprod._speedups",
            sources=["src/kprod/_speedups.c", "src/kprod/_speedups_io.c"],
            depends=["src/kprod/_speedups_io.h"],
            optional=True,
            extra_compile_args=["-O2"] if __import__("os").name != "nt" else [],
        )
    ]
)

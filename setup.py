"""Build the optional C accelerator, tlstiming._recording._speedups (metadata: pyproject.toml).

``optional=True``: where it cannot be compiled (no C compiler, no Python
headers, not CPython) the package installs without it and tlstiming runs
its pure-Python code, which records exactly the same spans, a little slower.
``TLSTIMING_NO_EXTENSIONS=1`` skips it on purpose.
"""

import os
import platform

from setuptools import Extension, setup

extensions = []
if platform.python_implementation() == "CPython" and not os.environ.get("TLSTIMING_NO_EXTENSIONS"):
    extensions.append(
        Extension(
            "tlstiming._recording._speedups",
            ["tlstiming/_recording/_speedups.c"],
            optional=True,
        )
    )

setup(ext_modules=extensions)

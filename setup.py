"""Build step pyproject.toml cannot declare: the lab files ride inside the wheel.

The conformance suite, the rig files, the registry fixtures with the test PKI and the sample
images live at the top of the repository (hil_tests/, rigs/, fixtures/, firmware_images/), where
a lab edits them. A wheel carries copies under bench/embedded/, so an installed bench runs the
suite with no checkout beside it (`bench.rig.model.shipped` finds either).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
EMBEDDED = ("hil_tests", "rigs", "fixtures", "firmware_images")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


class BuildWithLabFiles(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's own directories
            return
        target = Path(self.build_lib) / "bench" / "embedded"
        for name in EMBEDDED:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(ROOT / name, target / name, ignore=IGNORED)


setup(cmdclass={"build_py": BuildWithLabFiles})

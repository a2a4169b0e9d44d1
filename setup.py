"""Package discovery for pyproject.toml's setuptools build: every package under app/ and workers/ is found, so a
new subpackage is never silently left out of the wheel; app.templates (the top-level templates/ folder, mapped by
pyproject's package-dir) is named here because discovery finds folders, it cannot rename one into a package."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["app", "app.*", "workers", "workers.*"]), "app.templates"])

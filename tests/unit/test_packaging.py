"""The wheel of a non-editable `pip install .`: every package discovered (a new subpackage included without
touching the build configuration), the pages' templates as app.templates, config.py as a module."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import ROOT

SOURCES = ("app", "workers", "templates", "config.py", "pyproject.toml", "setup.py", "README.md")


def test_the_wheel_discovers_packages_and_ships_templates_and_config(tmp_path: Path):
    source = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(ROOT / name, source / name)
    (source / "app" / "brand_new").mkdir()
    (source / "app" / "brand_new" / "__init__.py").write_text('"""A subpackage nobody listed anywhere."""\n')
    packages = {p.parent.relative_to(source).as_posix() for p in source.glob("*/**/__init__.py")}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("rq_monitor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "config.py" in names and "app/brand_new/__init__.py" in names
    assert packages >= {"app", "app/domain", "app/blueprints", "workers"}
    assert {f"{package}/__init__.py" for package in packages} <= names
    assert {f"app/templates/{p.name}" for p in (ROOT / "templates").glob("*.html")} <= names
    assert "app/static/app.js" in names

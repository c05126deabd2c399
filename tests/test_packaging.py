"""pyproject.toml declares its licence the current way (PEP 639) and builds without warnings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_licence_is_an_spdx_expression_with_its_files():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"  # a string, not the deprecated {text = ...} table
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))


def test_build_requires_a_setuptools_that_understands_pep_639():
    (requirement,) = PYPROJECT["build-system"]["requires"]
    match = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", requirement)
    assert match and int(match.group(1)) >= 77, requirement


def test_library_lower_bounds_have_the_apis_switchd_uses():
    deps = {re.split(r"[<>=;\[ ]", d, maxsplit=1)[0].lower(): d
            for d in PYPROJECT["project"]["dependencies"]}
    assert deps["python-ulid"].startswith("python-ulid>=4.0")  # ULIDGenerator, policies
    assert deps["structlog"].startswith("structlog>=26.1")  # BytesLogger.name


def test_building_the_package_prints_no_deprecation_warning(tmp_path):
    """Build a wheel from a copy of the sources, as `pip install` does, and read its output.

    Needs setuptools>=77 from the package index (or pip's cache) for the isolated build.
    """
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "switchd", src / "switchd",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path / "dist"),
         str(src)], capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    if done.returncode != 0 and ("Could not find a version" in output
                                 or "NewConnectionError" in output):
        pytest.skip("no package index to fetch setuptools>=77 from")
    assert done.returncode == 0, output[-2000:]
    assert "Deprecat" not in output, [x for x in output.splitlines() if "Deprecat" in x]
    (wheel,) = (tmp_path / "dist").glob("switchd-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in zf.namelist())
    assert "License-Expression: MIT" in text and "License-File: LICENSE" in text

"""The layout keeps the standard library's `platform` module reachable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ["platform", "seat", "media", "video", "kiosk_client"]


def test_stdlib_platform_is_not_shadowed_from_repo_root() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import platform, cloudbank.platform.app as a; "
                               "print(platform.system(), platform.__file__, a.__name__)"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "Linux"
    assert "cloudbank" not in out[1] and out[1].endswith("platform.py")
    assert out[2] == "cloudbank.platform.app"


def test_no_init_files_above_the_subpackages() -> None:
    for folder in FOLDERS:
        assert not (ROOT / folder / "__init__.py").exists()
        assert not (ROOT / folder / "cloudbank" / "__init__.py").exists()
        assert sorted(p.name for p in (ROOT / folder).iterdir() if not p.name.startswith(".")
                      and p.name != "__pycache__") == ["cloudbank"]
    assert not list((ROOT / "tests").rglob("__init__.py"))

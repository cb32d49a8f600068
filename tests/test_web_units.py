"""The page's JavaScript units (tests/web/*.test.js) under Node's own test runner, so the README's test command
runs them: the playback state machine is tested without a server or a browser there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB_TESTS = Path(__file__).resolve().parent / "web"


def test_the_page_units_pass_under_node() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail("Node.js is not installed; scripts/test.sh installs Debian's nodejs")
    files = sorted(str(p) for p in WEB_TESTS.glob("*.test.js"))
    assert files, "no JavaScript unit tests found"
    run = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120)
    summary = [line for line in run.stdout.splitlines() if line.startswith(("# pass", "# fail", "not ok"))]
    assert run.returncode == 0, "\n".join(summary) + "\n" + run.stdout[-4000:] + run.stderr[-2000:]
    assert "# pass 0" not in run.stdout

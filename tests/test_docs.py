"""The README documents every setting, and the CI script runs the README's test command."""

from __future__ import annotations

from pathlib import Path

from avatarchat.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in Settings.model_fields if f"`AVATARCHAT_{n.upper()}`" not in readme]
    assert not missing, f"README.md lacks settings: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test.sh" in readme and "./scripts/serve.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()

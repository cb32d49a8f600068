"""The README documents every setting, and the CI script runs the README's test command."""

from __future__ import annotations

from pathlib import Path

from avatarchat.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in Settings.model_fields if f"`AVATARCHAT_{n.upper()}`" not in readme]
    assert not missing, f"README.md lacks settings: {missing}"


def test_the_readme_settings_table_is_generated_from_settings() -> None:
    """One source per fact: the table is what scripts/settings_table.py writes from the field descriptions."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "settings_table.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test.sh" in readme and "./scripts/serve.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_protocol_doc_lists_exactly_the_events_the_server_sends() -> None:
    import re

    from avatarchat import events

    sent = {cls.model_fields["type"].default for cls in vars(events).values()
            if isinstance(cls, type) and issubclass(cls, events.Event) and cls is not events.Event}
    doc = (ROOT / "docs" / "protocol.md").read_text()
    table = doc.split("## Events", 1)[1].split("## Frames", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))
    assert documented == sent, (sorted(documented - sent), sorted(sent - documented))

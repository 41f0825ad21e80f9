"""The metric definitions ship with the repository and every link to them resolves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ncviz.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "metrics.md"
SHARED = ROOT.parent / "shared" / "METRICS.md"


def test_every_metric_key_is_defined_in_docs():
    text = DOCS.read_text()
    missing = [key for key in METRICS if f"`{key}`" not in text]
    assert not missing, missing


@pytest.mark.skipif(not SHARED.is_file(), reason="no shared design docs beside this checkout")
def test_docs_keep_every_shared_definition():
    docs = DOCS.read_text()
    for line in SHARED.read_text().splitlines():
        assert line in docs, f"docs/metrics.md lacks: {line[:80]}"


def test_links_in_readme_and_code_resolve():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (ROOT / target).exists(), target
    for path in [*ROOT.glob("ncviz/**/*.py"), *ROOT.glob("app/**/*.py"), ROOT / "README.md"]:
        for name in re.findall(r"\b[\w/]*metrics\.md\b", path.read_text()):
            assert (ROOT / name).is_file() or name == "docs/metrics.md", (path, name)
            assert name == "docs/metrics.md", f"{path.relative_to(ROOT)} points to {name}"


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_run_answers_this_machine_only_unless_asked():
    def command(*args: str) -> str:
        found = subprocess.run(
            ["make", "-n", "run", *args], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return found.stdout.replace("\\\n", " ")

    assert "ncviz serve --port 8501 --host 127.0.0.1" in command()
    assert "--host 0.0.0.0" in command("ADDRESS=0.0.0.0")

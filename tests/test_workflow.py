"""The GitHub Actions workflow that publishes the book is valid against GitHub's workflow schema."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECK = Path(sys.executable).parent / "check-jsonschema"


def validate(path: Path) -> subprocess.CompletedProcess:
    if not CHECK.exists():
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    return subprocess.run([str(CHECK), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True)


def test_there_is_a_workflow_that_builds_and_deploys_the_book():
    assert WORKFLOWS, "no workflow in .github/workflows"
    text = "\n".join(p.read_text() for p in WORKFLOWS)
    assert "make book" in text and "deploy-pages" in text and "jupyter_cache" in text


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_githubs_schema(path):
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOWS[0].read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert validate(broken).returncode != 0

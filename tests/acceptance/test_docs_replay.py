"""The pipeline files in README.md and docs/ validate as written, with the command a user
types; what they need (a secret) is said by the error when it is missing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def pipeline_blocks() -> list[tuple[str, str]]:
    """Every YAML block of the docs that is a whole pipeline file (it has ``steps:``)."""
    found = []
    for page in PAGES:
        blocks = re.findall(r"```ya?ml\n(.*?)```", page.read_text(), re.S)
        for n, block in enumerate(blocks):
            if re.search(r"^steps:", block, re.M):
                found.append((f"{page.relative_to(ROOT)}#{n}", block))
    return found


def validate(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate", "pipelines", "validate", str(path), "-o", "json"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")} | env,
        timeout=60,
    )


@pytest.mark.parametrize(("where", "block"), pipeline_blocks(), ids=lambda v: str(v)[:40])
def test_every_pipeline_file_in_the_docs_validates(where: str, block: str, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(block)
    needed = sorted(set(re.findall(r"\$\{secrets\.([A-Za-z0-9_]+)\}", block)))
    env = {f"LOCKGATE_SECRET_{name}": "a-value-for-the-test" for name in needed}
    out = validate(path, env)
    assert out.returncode == 0, f"{where}: {out.stdout}{out.stderr}"
    assert json.loads(out.stdout)["valid"] is True
    for name in needed:  # without it, the error says how to provide it
        refused = validate(path, {k: v for k, v in env.items() if not k.endswith(name)})
        assert refused.returncode == 2
        problems = json.loads(refused.stdout)["problems"]
        assert any(f"set LOCKGATE_SECRET_{name}" in p["message"] for p in problems), problems
        assert any("LOCKGATE_SECRETS_DIR" in p["message"] for p in problems)


def test_the_docs_have_pipeline_files_to_check() -> None:
    assert len(pipeline_blocks()) >= 2


def test_the_readme_project_commands_run_as_written(tmp_path: Path) -> None:
    """README's "Your own project" block, line by line in a shell, as a new user pastes it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Your own project", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    bindir = str(Path(sys.executable).parent)  # where this environment's lockgate is
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    script = "set -e\n" + block.group(1)
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCEEDED" in out.stdout and "lockgate.toml" in out.stdout

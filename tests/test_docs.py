"""Every Python block of README.md and docs/*.md runs as written, and so does the tutorial.

Each file runs as one script in a fresh interpreter, in an empty working directory, its
blocks in order (``tests/markdown_blocks.py`` says how, and how a block asks for tiny
settings). A failure names the Markdown file and line.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_blocks import RUN_MARK, blocks, script

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = [p for p in FILES if any(b.language == "python" or b.run for b in blocks(p))]


def run_markdown(path: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs a Markdown file's blocks; the installed ``gossip`` comes first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", script(path)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("path", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_markdown_runs_as_written(path, tmp_path):
    result = run_markdown(path, tmp_path)
    assert result.returncode == 0, (f"{path.relative_to(ROOT)} failed:\n{result.stdout[-3000:]}"
                                    f"\n{result.stderr[-6000:]}")


def test_code_fences_name_their_language():
    # A block the collector cannot classify (a bare fence, ```py) would go untested.
    for path in FILES:
        for b in blocks(path):
            assert b.language in ("python", "bash", "toml", "text", "json"), \
                f"{path.relative_to(ROOT)}:{b.line - 1}: fence language {b.language!r}"


def test_the_tutorial_runs_its_commands_too():
    tutorial = ROOT / "docs" / "tutorial.md"
    marked = [b for b in blocks(tutorial) if b.run]
    assert marked and RUN_MARK in tutorial.read_text()
    assert tutorial in RUNNABLE

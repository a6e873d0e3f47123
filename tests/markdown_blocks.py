"""The code blocks of a Markdown file, as the docs test runs them.

A block is a fenced block (three backticks and a language; indented in a list item too). The
test runs:

- every ``python`` block, all blocks of one file in order in one interpreter (a later block
  may use what an earlier one defined), as a reader would paste them;
- a shell block only when the line right above its fence is ``<!-- docs-test: run -->``:
  its commands run one by one, in order with the Python blocks, ``pip install`` lines
  skipped (the test runs in the installed environment).

A line that ends with ``# tiny: REPLACEMENT`` runs as REPLACEMENT (same indentation): the
block says so where the test shrinks a setting (fewer rounds), and the reader sees the
setting as written.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

RUN_MARK = "<!-- docs-test: run -->"
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_TINY = re.compile(r"^(?P<indent>\s*)(?P<code>.*?)\s+# tiny: (?P<tiny>.*)$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block.

    Attributes:
        path: the Markdown file.
        line: the line number of its first code line (1-based).
        language: the fence's language (``python``, ``bash``, ...).
        code: the code as written.
        run: a shell block marked to run.
    """

    path: Path
    line: int
    language: str
    code: str
    run: bool

    def tiny(self) -> str:
        """The code with every ``# tiny:`` line replaced by its replacement."""
        out = []
        for line in self.code.splitlines():
            m = _TINY.match(line)
            out.append(m["indent"] + m["tiny"] if m else line)
        return "\n".join(out) + "\n"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order (``language`` empty for a bare fence)."""
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, start = len(m[1]), i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        run = i > 0 and lines[i - 1].strip() == RUN_MARK
        code = "\n".join(line[indent:] for line in lines[start:end]) + "\n"
        found.append(Block(path, start + 1, m[2], code, run))
        i = end + 1
    return found


def script(path: Path) -> str:
    """One Python script that runs the file's blocks in order: each Python block in one
    shared namespace (a traceback names the Markdown file and line), each marked shell
    block's commands through the shell, stopping at the first that fails."""
    parts = ["import subprocess", "__ns = {'__name__': '__main__'}"]
    for b in blocks(path):
        if b.language == "python":
            src = "\n" * (b.line - 1) + b.tiny()
            parts.append(f"exec(compile({src!r}, {str(b.path)!r}, 'exec'), __ns)")
        elif b.run:
            for cmd in shell_commands(b):
                parts.append(f"print('$ ' + {cmd!r}, flush=True)")
                parts.append(f"subprocess.run({cmd!r}, shell=True, check=True)")
    return "\n".join(parts) + "\n"


def shell_commands(block: Block) -> list[str]:
    """The commands of a marked shell block: one per line, ``\\`` continuations joined;
    comment lines and ``pip install`` lines skipped."""
    joined = block.tiny().replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith(("#", "pip ", "python -m pip "))]

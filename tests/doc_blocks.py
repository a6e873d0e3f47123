"""The command blocks of the docs that tests run as written, so the docs cannot drift.

A block is marked in the Markdown by an HTML comment on the line before its fence (invisible
when rendered)::

    <!-- tested: NAME (anything after the name is a note) -->
    ```bash
    ...
    ```
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def doc_block(name: str, doc: str = "multihost.md") -> str:
    """The text of the fenced block marked ``<!-- tested: NAME ... -->`` in ``docs/doc``.

    Raises:
        LookupError: no such block, or more than one.
    """
    text = (DOCS / doc).read_text()
    pattern = re.compile(rf"^<!-- tested: {re.escape(name)}\b[^\n]*-->\n```[\w-]*\n(.*?)^```$",
                         re.MULTILINE | re.DOTALL)
    found = pattern.findall(text)
    if len(found) != 1:
        raise LookupError(f"docs/{doc}: {len(found)} blocks marked 'tested: {name}', expected 1")
    return found[0]

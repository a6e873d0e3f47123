"""Loads matplotlib's pyplot with the file-only Agg backend, or says how to install it."""

from __future__ import annotations

import importlib.util
from typing import Any

from gossip.errors import optional_import

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "svg.fonttype": "none",  # text stays text in SVG files: searchable, and testable
}
"""Readable defaults for every figure of gossip-train (applied with ``plt.rc_context``)."""


def have_matplotlib() -> bool:
    """Whether matplotlib is installed (without importing it)."""
    return importlib.util.find_spec("matplotlib") is not None


def load_pyplot(needed_by: str) -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed).

    Args:
        needed_by: what draws, for the error message, e.g. ``"gossip plot"``.

    Raises:
        ConfigError: matplotlib is not installed; the message says how to install it.
    """
    matplotlib = optional_import("matplotlib", "plots", needed_by)
    matplotlib.use("Agg")
    return optional_import("matplotlib.pyplot", "plots", needed_by)

"""Log-axis limits that show the data that matters."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

ROUND_OFF = 1e-8
"""Values below this fraction of the largest value on a log axis are taken as zero reached up
to float round-off (e.g. the consensus distance of the complete graph, ~1e-12): they are
drawn at the bottom of the axis instead of stretching it over ten empty decades."""


def log_limits(series: Iterable[np.ndarray | list[float]], round_off: float = ROUND_OFF
               ) -> tuple[float, float] | None:
    """``(bottom, top)`` of a log axis for the given curves, in whole decades.

    Args:
        series: the curves' values (non-positive and non-finite ones are ignored).
        round_off: values below ``round_off`` × the largest are clipped to the bottom.

    Returns:
        The limits, or None when no value is positive.
    """
    values = [np.asarray(s, dtype=np.float64).ravel() for s in series]
    pos = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values] or [np.zeros(0)])
    if pos.size == 0:
        return None
    top = float(pos.max())
    low = float(pos[pos >= top * round_off].min())
    return 10.0 ** math.floor(math.log10(low)), 10.0 ** math.ceil(math.log10(top) + 1e-12)


def clip_below(values: np.ndarray | list[float], bottom: float) -> tuple[np.ndarray, bool]:
    """The values with those below ``bottom`` (zeros too) raised to it, and whether any was."""
    v = np.asarray(values, dtype=np.float64)
    low = np.isfinite(v) & (v < bottom)
    return np.where(low, bottom, v), bool(low.any())

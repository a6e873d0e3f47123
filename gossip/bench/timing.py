"""Benchmark timing: the median wall-clock time of repeated calls, after a warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax


def median_seconds(calls: Mapping[str, Callable[[], Any]], repeats: int,
                   warmup: int = 1) -> dict[str, float]:
    """Median seconds of one call of each function, the functions timed side by side.

    Each of ``warmup + repeats`` rounds calls every function once and waits for its result
    (``jax.block_until_ready``, so asynchronous JAX work is counted); the order rotates by one
    every round so that no function always goes first. The first ``warmup`` rounds
    (compilation, connection set-up) are not timed.

    Args:
        calls: name -> a function of no arguments.
        repeats: timed rounds, >= 1.
        warmup: untimed rounds before them.

    Returns:
        name -> the median of its ``repeats`` timings, in seconds.
    """
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            jax.block_until_ready(calls[name]())
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """``median_seconds`` of one function."""
    return median_seconds({"fn": fn}, repeats, warmup)["fn"]

"""The persistent XLA compilation cache of real peers (config key ``compile_cache``).

Every peer of a run compiles the same functions (local steps, message, mix, evaluation) for
the same shapes. With JAX's persistent compilation cache in a directory the peers share, a
peer that starts after another has compiled (a restarted peer, ``--resume``, a rerun into
the same ``--out``, or any run with a directory shared across runs) loads the executables
instead of compiling them. ``auto`` is JAX's own ``JAX_COMPILATION_CACHE_DIR`` when that is
set, else ``OUT/compile-cache``; ``off`` leaves JAX as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

OFF = "off"
AUTO = "auto"


def cache_dir(setting: str, out: Path) -> Path | None:
    """The directory a ``compile_cache`` setting names for a run writing to ``out``.

    Args:
        setting: ``"auto"``, ``"off"`` or a directory.
        out: the run directory.

    Returns:
        For ``auto``: ``$JAX_COMPILATION_CACHE_DIR`` when set and not empty, else
        ``out / "compile-cache"``; None for ``off``; else the directory.
    """
    if setting == OFF:
        return None
    if setting in (AUTO, ""):
        shared = os.environ.get("JAX_COMPILATION_CACHE_DIR")
        return Path(shared) if shared else out / "compile-cache"
    return Path(setting).expanduser()


def enable_compile_cache(directory: Path | None) -> None:
    """Points JAX's persistent compilation cache at ``directory`` (created), caching every
    executable however fast it compiled; None does nothing. Call it before anything is
    compiled."""
    if directory is None:
        return
    import jax  # noqa: PLC0415 (only a peer that caches needs it here)

    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

"""Sharding the peer axis over JAX devices, so a simulation can outgrow one device.

Every array with a leading peer axis (parameters, optimizer and rule state, shards, the
round's neighbour and weight arrays) is split over a 1-D mesh named ``"peers"``; jit
propagates the layout through the round, and the neighbour gather becomes the
cross-device exchange. On CPU, ``JAX_NUM_CPU_DEVICES=2`` gives two host devices.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def peer_sharding(n: int, devices: list[jax.Device] | None = None) -> NamedSharding | None:
    """The sharding of a leading peer axis of size ``n`` over ``devices`` (default: all).

    Returns:
        None when there is one device or ``n`` is not a multiple of the device count (the
        run then stays on the default device).
    """
    devices = devices if devices is not None else jax.devices()
    if len(devices) < 2 or n % len(devices):
        return None
    return NamedSharding(Mesh(np.array(devices), ("peers",)), PartitionSpec("peers"))


def shard_peers(tree: Any, sharding: NamedSharding | None) -> Any:
    """Places every leaf with a leading peer axis on ``sharding``; scalars are replicated."""
    if sharding is None:
        return tree
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    return jax.tree.map(
        lambda a: jax.device_put(a, sharding if np.ndim(a) else replicated), tree)

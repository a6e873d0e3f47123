"""Datasets and how they are split among peers (numpy only; nothing downloads).

``load_dataset(name, seed=..., **options)`` returns a ``Dataset``; ``partition`` splits its
training labels among ``n`` peers; ``peer_shard`` gives one peer its own shard.
"""

from gossip.data.dataset import TASKS, Dataset
from gossip.data.image import read_idx
from gossip.data.partition import PARTITIONS, partition, peer_shard
from gossip.data.registry import DATASETS, load_dataset

__all__ = [
    "DATASETS",
    "PARTITIONS",
    "TASKS",
    "Dataset",
    "load_dataset",
    "partition",
    "peer_shard",
    "read_idx",
]

"""Datasets and how they are split among peers (numpy only; nothing downloads).

``load_dataset(name, seed=..., **options)`` returns a ``Dataset``; ``partition`` splits its
training labels among ``n`` peers; ``dataset_partition`` splits a dataset (taking its own split
when it has one, e.g. ``least_squares``); ``peer_shard`` gives one peer its own shard.
"""

from gossip.data.dataset import TASKS, Dataset
from gossip.data.image import read_idx
from gossip.data.partition import PARTITIONS, SCHEMES, dataset_partition, partition, peer_shard
from gossip.data.registry import DATASETS, load_dataset

__all__ = [
    "DATASETS",
    "PARTITIONS",
    "SCHEMES",
    "TASKS",
    "Dataset",
    "dataset_partition",
    "load_dataset",
    "partition",
    "peer_shard",
    "read_idx",
]

"""Models: pure ``init`` / ``apply`` / ``loss`` / ``metric`` functions over plain pytrees.

Use ``make_model(name, meta, **options)``; ``MODELS`` maps each name to its factory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from gossip.models.base import Model
from gossip.models.cnn import make_cnn1d, make_cnn2d
from gossip.models.linear import make_linear
from gossip.models.logistic import make_logistic
from gossip.models.matrix_factorization import make_mf
from gossip.models.mlp import make_mlp
from gossip.models.transformer import make_transformer

from gossip.errors import unknown

__all__ = ["MODELS", "Model", "make_model"]

ModelFactory = Callable[..., Model]

MODELS: Mapping[str, ModelFactory] = MappingProxyType({
    "linear": make_linear,
    "logistic": make_logistic,
    "mlp": make_mlp,
    "cnn1d": make_cnn1d,
    "cnn2d": make_cnn2d,
    "transformer": make_transformer,
    "mf": make_mf,
})


def make_model(name: str, meta: Mapping[str, Any], **options: Any) -> Model:
    """Builds a model by name for a dataset.

    Args:
        name: one of ``MODELS``: ``linear``, ``logistic``, ``mlp``, ``cnn1d``, ``cnn2d``,
            ``transformer``, ``mf``.
        meta: the dataset's meta dict, with ``task`` added: ``task``, ``num_classes``,
            ``input_shape``, and ``vocab_size`` / ``seq_len`` (lm) or ``n_users`` /
            ``n_items`` (ratings).
        **options: the model's hyper-parameters; see each ``make_*`` factory.

    Returns:
        The model's pure functions.

    Raises:
        ConfigError: unknown name, unknown or bad option, or a dataset the model cannot fit.
    """
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    return MODELS[name](meta, **options)

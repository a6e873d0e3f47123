"""Models: pure ``init`` / ``apply`` / ``loss`` / ``metric`` functions over plain pytrees.

Use ``make_model(name, meta, **options)``; ``MODELS`` maps each name to its factory. A
model's module (and flax, for the models written with it) is imported when the model is
first built, so a run imports only the model it uses (``linear`` needs no flax).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from gossip.models.base import Model

from gossip.errors import unknown

__all__ = ["MODELS", "Model", "make_model"]

ModelFactory = Callable[..., Model]


def _lazy(module: str, factory: str) -> ModelFactory:
    """The factory ``gossip.models.<module>.<factory>``, imported on its first call."""

    def make(*args: Any, **kwargs: Any) -> Model:
        return getattr(importlib.import_module(f"gossip.models.{module}"), factory)(
            *args, **kwargs)

    make.__name__ = make.__qualname__ = factory
    make.__doc__ = f"``gossip.models.{module}.{factory}``, imported when first called."
    return make


MODELS: Mapping[str, ModelFactory] = MappingProxyType({
    "linear": _lazy("linear", "make_linear"),
    "logistic": _lazy("logistic", "make_logistic"),
    "mlp": _lazy("mlp", "make_mlp"),
    "cnn1d": _lazy("cnn", "make_cnn1d"),
    "cnn2d": _lazy("cnn", "make_cnn2d"),
    "transformer": _lazy("transformer", "make_transformer"),
    "mf": _lazy("matrix_factorization", "make_mf"),
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

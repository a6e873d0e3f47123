"""The ``Model`` type, the task losses and metrics, and option / meta checking shared by models.

A model is a NamedTuple of pure functions plus static facts, in the style of an optax
``GradientTransformation``. Parameters are a plain pytree (nested dicts of arrays): the
flax ``variables["params"]`` dict, unwrapped, so the rest of the framework never needs flax.

Tasks and what a model computes for them:

- ``classification``: ``apply`` gives logits ``(B, C)``, ``y`` is ``(B,)`` int class labels;
  loss is the mean softmax cross-entropy, metric the accuracy.
- ``lm``: ``apply`` gives logits ``(B, T, V)``, ``y`` is ``(B, T)`` int next tokens; loss is
  the mean per-token cross-entropy, metric the per-token accuracy.
- ``regression`` and ``ratings``: ``apply`` gives predictions ``(B,)``, ``y`` is ``(B,)``
  float; loss is the mean squared error, metric the RMSE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gossip import errors
from gossip.errors import ConfigError

if TYPE_CHECKING:  # flax is imported by the models that use it, not by this module
    import flax.linen as nn

Params = Any
TASKS = ("classification", "regression", "lm", "ratings")
CLASS_TASKS = ("classification", "lm")


class Model(NamedTuple):
    """The pure functions of one model and its static facts.

    Every function is jit- and vmap-compatible and free of side effects and randomness.

    Attributes:
        init: ``init(key, sample_x) -> params``; ``sample_x`` is a batch ``(B, *input_shape)``
            (B >= 1, e.g. 1); ``params`` is a nested dict of float32 arrays.
        apply: ``apply(params, x) -> outputs`` for a batch ``x`` of shape
            ``(B, *input_shape)``: logits ``(B, C)`` / ``(B, T, V)`` or predictions ``(B,)``.
        loss: ``loss(params, x, y) -> ()`` float32 mean loss over the batch.
        metric: ``metric(params, x, y) -> ()`` float32 accuracy in [0, 1] or RMSE >= 0.
        metric_name: ``"accuracy"`` or ``"rmse"``.
        name: the registry name of the model, e.g. ``"mlp"``.
    """

    init: Callable[[jax.Array, jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    loss: Callable[[Params, jax.Array, jax.Array], jax.Array]
    metric: Callable[[Params, jax.Array, jax.Array], jax.Array]
    metric_name: str
    name: str


# --- losses and metrics ---------------------------------------------------------------------


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy.

    Args:
        logits: ``(..., C)`` float logits.
        labels: ``(...)`` integer labels in ``[0, C)``.

    Returns:
        ``()`` float32 mean over every leading position.
    """
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), labels.astype(jnp.int32))
    return jnp.mean(losses)


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Share of positions whose arg-max logit is the label: ``(..., C), (...) -> ()``."""
    hits = jnp.argmax(logits, axis=-1).astype(jnp.int32) == labels.astype(jnp.int32)
    return jnp.mean(hits.astype(jnp.float32))


def mean_squared_error(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error: ``(B,), (B,) -> ()`` float32."""
    return jnp.mean((pred.astype(jnp.float32) - target.astype(jnp.float32)) ** 2)


def rmse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Root mean squared error: ``(B,), (B,) -> ()`` float32."""
    return jnp.sqrt(mean_squared_error(pred, target))


def from_module(name: str, module: nn.Module, task: str,
                input_dtype: jnp.dtype = jnp.float32) -> Model:
    """Wraps a flax module into a ``Model`` with the loss and metric of ``task``.

    Args:
        name: the registry name of the model.
        module: a flax ``nn.Module`` whose ``__call__(x)`` maps a batch ``(B, *input_shape)``
            to the outputs of ``task`` (see the module docstring).
        task: one of ``TASKS``.
        input_dtype: ``x`` is cast to this dtype before the module sees it (float32 features,
            int32 ids).

    Returns:
        The model; ``params`` is the module's ``variables["params"]`` as plain dicts.
    """

    @jax.jit
    def init(key: jax.Array, sample_x: jax.Array) -> Params:
        # Jitted: flax's eager init compiles every random op separately, which is slower.
        variables = module.init(key, jnp.asarray(sample_x).astype(input_dtype))
        return _plain(variables["params"])

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return module.apply({"params": params}, jnp.asarray(x).astype(input_dtype))

    loss_of, metric_of, metric_name = (
        (cross_entropy, accuracy, "accuracy") if task in CLASS_TASKS
        else (mean_squared_error, rmse, "rmse"))

    def loss(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        return loss_of(apply(params, x), y)

    def metric(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        return metric_of(apply(params, x), y)

    return Model(init, apply, loss, metric, metric_name, name)


def _plain(tree: Any) -> Any:
    """Nested mappings (dicts or flax FrozenDicts) as plain dicts; arrays unchanged."""
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def dense_head(x: jax.Array, num_outputs: int | None) -> jax.Array:
    """The output layer, called inside a module's ``@nn.compact`` ``__call__``.

    Args:
        x: ``(B, F)`` features.
        num_outputs: C for logits, or None for one regression output.

    Returns:
        ``(B, C)`` logits, or ``(B,)`` predictions when ``num_outputs`` is None.
    """
    import flax.linen as nn  # noqa: PLC0415 (only flax models call this)

    if num_outputs is None:
        return nn.Dense(1, name="out")(x)[:, 0]
    return nn.Dense(num_outputs, name="out")(x)


# --- options and meta -----------------------------------------------------------------------


def resolve_options(model: str, given: Mapping[str, Any],
                    defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``gossip.errors.resolve_options`` for the options of model ``model``."""
    return errors.resolve_options(f"model {model!r}", given, defaults)


def require_task(model: str, meta: Mapping[str, Any], allowed: Sequence[str]) -> str:
    """The dataset's task, checked against the tasks a model supports.

    Raises:
        ConfigError: the task is missing, unknown, or not one of ``allowed``.
    """
    task = meta.get("task")
    if task not in TASKS:
        raise ConfigError(f"model {model!r}: dataset meta has bad task {task!r}; "
                          f"valid: {', '.join(TASKS)}")
    if task not in allowed:
        needs = " or ".join(allowed)
        article = "an" if needs[0] in "aeiou" or needs.startswith("lm") else "a"
        raise ConfigError(f"model {model!r} needs {article} {needs} dataset, "
                          f"got task {task!r}")
    return task


def meta_int(model: str, meta: Mapping[str, Any], key: str, minimum: int = 1) -> int:
    """An integer fact from the dataset meta, e.g. ``num_classes`` or ``vocab_size``.

    Raises:
        ConfigError: the key is missing, not an int, or below ``minimum``.
    """
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model {model!r}: dataset meta {key!r} must be an int >= "
                          f"{minimum}, got {value!r}")
    return value


def input_shape(model: str, meta: Mapping[str, Any], ranks: Sequence[int]) -> tuple[int, ...]:
    """The shape of one sample from the dataset meta, checked against the ranks a model takes.

    Raises:
        ConfigError: the shape is missing or malformed, or its rank is not in ``ranks``.
    """
    shape = meta.get("input_shape")
    if (not isinstance(shape, Sequence) or isinstance(shape, str)
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape)):
        raise ConfigError(f"model {model!r}: dataset meta 'input_shape' must be a tuple of "
                          f"positive ints, got {shape!r}")
    if len(shape) not in ranks:
        raise ConfigError(f"model {model!r} needs inputs of rank "
                          f"{' or '.join(map(str, ranks))}, got input shape {tuple(shape)}")
    return tuple(shape)


def option_int(model: str, option: str, value: Any, minimum: int = 1) -> int:
    """An integer option value, at least ``minimum``.

    Raises:
        ConfigError: the value is not an int (bools are rejected) or is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model {model!r}: option {option!r} must be an int >= {minimum}, "
                          f"got {value!r}")
    return value


def option_widths(model: str, option: str, value: Any, allow_empty: bool) -> tuple[int, ...]:
    """A list/tuple option of positive widths, e.g. ``hidden`` or ``channels``.

    Raises:
        ConfigError: the value is not a sequence of ints >= 1 (or is empty when not allowed).
    """
    if (not isinstance(value, Sequence) or isinstance(value, str)
            or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in value)
            or (not value and not allow_empty)):
        kind = "a list" if allow_empty else "a non-empty list"
        raise ConfigError(f"model {model!r}: option {option!r} must be {kind} of ints >= 1, "
                          f"got {value!r}")
    return tuple(value)


def num_outputs(model: str, meta: Mapping[str, Any], task: str) -> int | None:
    """The head size: ``num_classes`` (>= 2) for classification, None for regression."""
    if task == "classification":
        return meta_int(model, meta, "num_classes", minimum=2)
    return None

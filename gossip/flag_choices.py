"""The choices ``--help`` lists for the flags that name something (``--model`` ...).

Each is a function, called only when help is shown: listing the models imports the model
zoo (flax), which a plain ``gossip`` call should not pay for.
"""

from __future__ import annotations

from collections.abc import Callable


def _names(key: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        from gossip.experiment import config_choices  # the registries, the zoo included

        return config_choices()[key]

    return names


CHOICES: dict[str, Callable[[], list[str]]] = {
    key: _names(key)
    for key in ("topology", "weights", "rule", "dataset", "model", "optimizer", "partition",
                "compress", "outer_optimizer", "robust", "attack")
}
"""Config key -> a function listing its valid values."""

"""Errors that a user can cause and fix: bad names, bad values, missing files."""

from __future__ import annotations

import importlib
import operator
from collections.abc import Iterable, Mapping
from typing import Any


class ConfigError(ValueError):
    """A user-facing configuration error.

    The message is one line that names the bad value and, where there is a closed set,
    the valid choices. The CLI prints it as ``gossip: error: <message>`` and exits with 2.
    """


def unknown(kind: str, value: object, choices: Iterable[str]) -> ConfigError:
    """Builds the error for a name that is not one of ``choices``.

    Args:
        kind: what the name is for, e.g. ``"topology"``.
        value: the name the user gave.
        choices: the valid names.

    Returns:
        A ``ConfigError`` whose message names the value and the valid choices.
    """
    return ConfigError(f"unknown {kind} {value!r}; valid choices: {', '.join(sorted(choices))}")


def resolve_options(owner: str, given: Mapping[str, Any],
                    defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Merges user options over defaults, rejecting names that are not among them.

    Args:
        owner: what the options are for, e.g. ``"model 'mlp'"``, for the error message.
        given: the options the user passed.
        defaults: every valid option with its default value.

    Returns:
        A dict with one entry per key of ``defaults``.

    Raises:
        ConfigError: ``unknown option 'x' for model 'mlp'; valid options: hidden``.
    """
    for option in given:
        if option not in defaults:
            valid = ", ".join(sorted(defaults)) or "(none)"
            raise ConfigError(f"unknown option {option!r} for {owner}; valid options: {valid}")
    return {**defaults, **given}


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """An integer (numpy integers too, bools not) in ``[low, high]``, or ConfigError naming it."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be {bounds}, got {value}")
    return value


def check_type(name: str, value: Any, expected: type) -> Any:
    """A value of type ``expected`` (an int is accepted as a float and becomes one; a bool is
    never an int or a float), or ConfigError: ``NAME must be int, got str '4'``."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
        raise ConfigError(f"{name} must be {expected.__name__}, "
                          f"got {type(value).__name__} {value!r}")
    return value


def optional_import(module: str, extra: str, needed_by: str) -> Any:
    """Imports a package that an extra of gossip-train installs.

    Args:
        module: the module to import, e.g. ``"matplotlib.pyplot"``.
        extra: the extra that installs it, e.g. ``"plots"``.
        needed_by: what needs it, for the message, e.g. ``"dataset 'mnist1d'"``.

    Returns:
        The imported module.

    Raises:
        ConfigError: the package is not installed; the message says how to install it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"{needed_by} needs the package {module.split('.')[0]!r}, which is "
                          f"not installed: pip install 'gossip-train[{extra}]'") from e


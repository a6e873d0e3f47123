"""Errors that a user can cause and fix: bad names, bad values, missing files."""

from __future__ import annotations

from collections.abc import Iterable


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

"""How `SEARCH_*` settings are read: one way to say yes or no, and integers checked.

The service, the embedder and the scripts all read switches through `flag`, so
`SEARCH_VERIFY=no` and `SEARCH_EMBED_SPIN=no` mean the same thing.
"""

from __future__ import annotations

import os

FALSE_WORDS = frozenset({"false", "0", "off", "no"})


def flag(value) -> bool:
    """A switch as written: false for false/0/off/no (any case), true otherwise."""
    return str(value).strip().lower() not in FALSE_WORDS


def env_flag(name: str, default: bool = True) -> bool:
    """The switch `name` from the environment, `default` when it is unset."""
    value = os.environ.get(name)
    return default if value is None else flag(value)


def integer(name: str, value) -> int:
    """A setting that must be a whole number; ValueError naming it otherwise."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"SEARCH_{name} must be an integer, got {value!r}") from None

"""The one primitive every export-time rewrite is made of: an attribute replaced inside a block."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def patched_attribute(owner: object, name: str, replacement: object) -> Iterator[None]:
    """Set `owner.name` to `replacement` inside the block and restore the original after it."""
    had_own_attribute = name in vars(owner)
    original = vars(owner).get(name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if had_own_attribute:
            setattr(owner, name, original)
        else:  # an instance patch over a class attribute: remove it
            delattr(owner, name)

"""One small registry for everything chosen by name (backbones, AM versions, explainers), after timm's.

>>> METHODS = Registry("method")
>>> @METHODS.register("gradcam")
... class GradCam: ...
>>> METHODS.get("gradcm")    # TameError: unknown method 'gradcm'; did you mean gradcam? (choose from ...)

Registering a taken name replaces it with a warning (timm: "Overwriting X in registry"); :func:`close_matches`
gives the "did you mean" suggestions for any name, registered or not (config keys, layer names).
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from tame.errors import TameError

T = TypeVar("T")
log = logging.getLogger(__name__)


def close_matches(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` that look like ``name``, best first."""
    return difflib.get_close_matches(name, list(choices), n=n, cutoff=cutoff)


class Registry(Generic[T]):
    """Names -> objects of one kind, with lookup by name (suggestions on a miss) and listing."""

    def __init__(self, kind: str, *, case_sensitive: bool = True) -> None:
        self.kind = kind
        self.case_sensitive = case_sensitive
        self._entries: dict[str, T] = {}

    def _key(self, name: str) -> str:
        return name if self.case_sensitive else name.lower()

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` as ``name``; a name already taken is replaced with a warning."""
        key = self._key(name)
        if key in self._entries and self._entries[key] is not obj:
            log.warning("Overwriting %s %r in registry", self.kind, name)
        self._entries[key] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda obj: self.add(name, obj)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._entries

    def resolve(self, name: str) -> str:
        """The registered spelling of ``name``; an unknown name is a TameError with suggestions."""
        key = self._key(name)
        if key in self._entries:
            return key
        close = close_matches(key, self._entries, n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise TameError(f"unknown {self.kind} {name!r}{hint} (choose from {', '.join(self._entries)})")

    def get(self, name: str) -> T:
        return self._entries[self.resolve(name)]

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names in registration order (those matching the glob ``pattern`` when given)."""
        return [n for n in self._entries if pattern is None or fnmatch.fnmatch(n, pattern)]

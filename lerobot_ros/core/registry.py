"""A tiny name -> factory registry, so that robots, backends and cameras are chosen by parameter
without if/elif chains, and a later module can add its own entries by importing this one."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """Raised for a name that no module registered; the message lists the valid names."""


class Registry(Generic[T]):
    """Maps names to factories. `what` names the kind of thing in error messages."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._factories: dict[str, Callable[..., T]] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: `@REGISTRY.register("sim")` above a class or factory function."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def lazy(self, name: str, module: str) -> None:
        """Register `name` as provided by `module`, imported only when `name` is asked for
        (so choosing the "sim" backend never imports a servo SDK, and the reverse)."""
        self._lazy[name] = module

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories and name in self._lazy:
            importlib.import_module(self._lazy[name])
        try:
            return self._factories[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.what} {name!r}; known: {', '.join(sorted(self._factories))}"
            ) from None

    def create(self, key: str, /, *args: object, **kwargs: object) -> T:
        """Build the thing registered under `key`; extra arguments go to its factory."""
        return self.get(key)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(set(self._factories) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        return name in self._factories or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

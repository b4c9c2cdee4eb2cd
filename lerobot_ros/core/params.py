"""Parameter specifications, ROS-free (in the spirit of generate_parameter_library).

Each node lists `ParamSpec`s; the node layer turns them into declared ROS parameters with
descriptors, and `validate()` checks the values so that a bad parameter stops the node at
start-up with a message naming the parameter and the value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], "str | None"]  # returns an error text, or None when the value is fine


class ParameterError(ValueError):
    """A parameter value is invalid. The message names the parameter and the value."""

    def __init__(self, name: str, value: Any, reason: str) -> None:
        super().__init__(f"parameter '{name}' = {value!r}: {reason}")
        self.name = name
        self.value = value
        self.reason = reason


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its name, default (which fixes its type), documentation and checks."""

    name: str
    default: Any
    description: str
    checks: tuple[Check, ...] = ()
    read_only: bool = True
    # Explicit element type for list parameters whose default is empty ("str" or "float").
    list_type: str | None = None

    @property
    def type_name(self) -> str:
        """One of bool, int, float, str, bool[], int[], float[], str[]."""
        v = self.default
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            return "int"
        if isinstance(v, float):
            return "float"
        if isinstance(v, str):
            return "str"
        if isinstance(v, list | tuple):
            if self.list_type:
                return f"{self.list_type}[]"
            if not v:
                raise TypeError(f"parameter {self.name}: empty list default needs list_type")
            return f"{ParamSpec('_', v[0], '').type_name}[]"
        raise TypeError(f"parameter {self.name}: unsupported default {v!r}")


def validate(specs: Iterable[ParamSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return {name: value} for every spec (defaults filled in), or raise ParameterError."""
    out: dict[str, Any] = {}
    for spec in specs:
        value = values.get(spec.name, spec.default)
        if isinstance(value, tuple):
            value = list(value)
        if spec.type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if spec.type_name == "float[]" and isinstance(value, list):
            value = [float(x) for x in value]
        for check in spec.checks:
            reason = check(value)
            if reason:
                raise ParameterError(spec.name, value, reason)
        out[spec.name] = value
    return out


# --- reusable checks -------------------------------------------------------------------------


def one_of(choices: Iterable[str] | Callable[[], Iterable[str]]) -> Check:
    """Value must be one of `choices` (a collection, or a callable read at check time)."""

    def check(v: Any) -> str | None:
        valid = sorted(choices() if callable(choices) else choices)
        return None if v in valid else f"must be one of {valid}"

    return check


def positive(v: Any) -> str | None:
    return None if _finite(v) and v > 0 else "must be a finite number > 0"


def non_negative(v: Any) -> str | None:
    return None if _finite(v) and v >= 0 else "must be a finite number >= 0"


def in_range(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        return None if _finite(v) and lo <= v <= hi else f"must be within [{lo}, {hi}]"

    return check


def non_empty(v: Any) -> str | None:
    return None if v not in ("", [], ()) else "must not be empty"


def unique(v: Sequence[Any]) -> str | None:
    return None if len(set(v)) == len(v) else "must not contain duplicates"


def file_exists(v: Any) -> str | None:
    if v == "":
        return None
    return None if os.path.isfile(str(v)) else "file does not exist"


def all_finite(v: Sequence[Any]) -> str | None:
    return None if all(_finite(x) for x in v) else "every element must be a finite number"


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

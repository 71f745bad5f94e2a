"""Typed hyperparameters of a neural generator from the flat mapping a request declares
(F-IMSD-2/10: drafts are plain JSON objects; F-PIL-22/23: declarative, never code).

A generator's hyperparameters are the fields of a few frozen dataclasses (e.g. `FitSchedule` and
the model's architecture); `typed_hyperparameters` fills them from one flat mapping, refusing
unknown names and ill-typed values with a `GeneratorError` that names the generator and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar

from flute.synth.generators import GeneratorError

T = TypeVar("T")


def default_hyperparameters(*groups: object) -> dict[str, Any]:
    """The flat mapping of default instances' fields (what `default_hyperparameters()` returns)."""
    merged: dict[str, Any] = {}
    for group in groups:
        merged |= asdict(group)  # type: ignore[call-overload]
    return merged


def effective_defaults(defaults: Mapping[str, Any], private_defaults: Mapping[str, Any], private: bool) -> dict[str, Any]:
    """The defaults a training request falls back to: under DP, the generator's private
    defaults replace some of them. DP-SGD on a few hundred rows per hub needs a different regime
    (small models, few long-batch rounds) than exact training; the non-DP defaults under DP give
    near-useless generators, so a request that sets nothing gets the regime measured for DP."""
    unknown = sorted(set(private_defaults) - set(defaults))
    if unknown:
        raise GeneratorError(f"private defaults name unknown hyperparameter(s) {unknown}")
    return dict(defaults) | (dict(private_defaults) if private else {})


def typed_hyperparameters(values: Mapping[str, Any], group: type[T], known: Mapping[str, Any], generator: str) -> T:
    """An instance of the dataclass `group`: each field from `values`, else from `known` (the
    plugin's defaults, which may differ from the dataclass' own); `known` also holds every
    accepted key (all groups), for the unknown-key check."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise GeneratorError(f"{generator}: unknown hyperparameter(s) {unknown}; known: {sorted(known)}")
    chosen = {item.name: _typed(item.name, values.get(item.name, known[item.name]), known[item.name], generator) for item in fields(group)}  # type: ignore[arg-type]
    try:
        return group(**chosen)
    except ValueError as exc:
        raise GeneratorError(f"{generator}: {exc}") from exc


def _typed(name: str, value: Any, default: Any, generator: str) -> Any:
    """`value` as the type of its default: an int where an int is expected, a number (int or
    float) as a float where a float is; booleans are never numbers."""
    if not isinstance(value, bool):
        if isinstance(default, float) and isinstance(value, (int, float)):
            return float(value)
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, int):
            return value
    raise GeneratorError(f"{generator}: hyperparameter {name!r} must be {'a number' if isinstance(default, float) else 'an integer'}, got {value!r}")

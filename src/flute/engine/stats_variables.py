"""The default statistics query of each study variable: data-independent clipping bounds and
histogram bins, fixed before any data is seen (a DP release may not choose them from the data).

Coded variables (binary, categories such as PI-RADS 1..5) get one bin per code and their code
range as bounds. Continuous ones get clinically plausible bounds (values outside are clamped,
so a mean is that of the clamped values) and conventional cut-offs (PSA 4/10/20 ng/mL, age by
decade, prostate volume 30/50/80 mL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flute.cohort.variables import VARIABLES_BY_NAME, VariableKind
from flute.privacy.dp_stats import StatisticsQuery, StatisticsQueryError, VariableQuery

_BOUNDS: Mapping[str, tuple[float, float]] = {
    "ageAtBiopsy": (40.0, 90.0),
    "psa": (0.0, 100.0),
    "prostateVolume": (10.0, 250.0),
}
_EDGES: Mapping[str, tuple[float, ...]] = {
    "ageAtBiopsy": (50.0, 60.0, 70.0, 80.0),
    "psa": (4.0, 10.0, 20.0),
    "prostateVolume": (30.0, 50.0, 80.0),
}


def variable_query(name: str) -> VariableQuery:
    spec = VARIABLES_BY_NAME.get(name)
    if spec is None:
        raise StatisticsQueryError(f"unknown study variable {name!r}; choose from {sorted(VARIABLES_BY_NAME)}")
    if spec.kind in (VariableKind.BINARY, VariableKind.CATEGORY):
        codes = spec.codes
        edges = tuple((a + b) / 2 for a, b in zip(codes, codes[1:]))
        return VariableQuery(name, float(codes[0]), float(codes[-1]), edges, tuple(str(code) for code in codes))
    lower, upper = _BOUNDS[name]
    edges = _EDGES[name]
    labels = (f"<{edges[0]:g}", *(f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:])), f">={edges[-1]:g}")
    return VariableQuery(name, lower, upper, edges, labels)


def statistics_query(names: Sequence[str], kind: str) -> StatisticsQuery:
    """The query of `kind` over these study variables with their default bounds and bins."""
    return StatisticsQuery(tuple(variable_query(name) for name in names), kind)  # type: ignore[arg-type]

"""The numeric view of a hub's study data that federated algorithms consume.

Algorithms never see the store or FHIR: a hub hands them a StudyTable (F-PIL-22: rows stay
in the hub's process; only aggregates computed from this table leave it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class StudyTable:
    """Feature matrix (float64, NaN = missing) and labels (1 csPCa, 0 not; unlabelled rows dropped).

    `columns` names the feature columns in order (StudyVariables names or derived names).
    """

    columns: tuple[str, ...]
    features: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[1] != len(self.columns):
            raise ValueError(
                f"StudyTable: features have shape {self.features.shape} but {len(self.columns)} columns were named"
            )
        if self.labels.shape != (self.features.shape[0],):
            raise ValueError(
                f"StudyTable: {self.labels.shape[0]} labels for {self.features.shape[0]} rows"
            )

    @property
    def n(self) -> int:
        return int(self.features.shape[0])


class StudyDataSource(Protocol):
    """Anything that yields a hub's study table: the hub store, or an in-memory table in tests
    and benchmarks."""

    def study_table(self, variables: Sequence[str], *, included_only: bool = True) -> StudyTable:
        """Labelled rows with the requested variables (NaN where missing)."""
        ...

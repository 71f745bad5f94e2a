"""Centralised reference synthesizers the synthetic-data benchmark sets our federated generators
against (issue targets, F-IMSD-3): SDV 2.0 GaussianCopula and TVAE (non-DP) and smartnoise MST
(differentially private). They run on POOLED rows, which FLUTE never does with hospital data:
they exist only to put our figures next to the published libraries' on the same split.

Every reference sees the table in the representation its library expects and hands back rows
typed by our schema, so the evaluation treats them exactly like ours:
- SDV: numbers as floats, categories as their schema labels; the output is rounded onto the
  schema's grid (`TableSchema.typed_frame`).
- MST needs categorical input: each column is replaced by its code on the schema's PUBLIC bins
  (`TableSchema.discretise`, missing = its own code), the code domain is declared from the schema
  rather than read from the data (no unpaid release), and sampled codes are decoded back to typed
  values by `TableSchema.decode` - the same binning and decoding our marginal generator uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from flute.synth.schema import TableSchema

if TYPE_CHECKING:
    import pandas as pd

#: TVAE epochs: SDV's default, 300, trains on ~1,000 PI-CAI rows in about 25 s on one torch
#: thread (2 threads on the busy 2-core host: 110 CPU s); 100 epochs left it far from converged
#: (TSTR LR 0.74 vs 0.86).
TVAE_EPOCHS = 300
MST_DELTA = 1e-6
#: SDV 2.0 takes and returns single tables as {name: frame}.
SDV_TABLE = "study"


class ReferenceSampler(Protocol):
    def sample(self, rows: int, rng: np.random.Generator) -> pd.DataFrame:
        """`rows` rows typed by the schema."""
        ...


@dataclass(frozen=True)
class Reference:
    """A centralised synthesizer: `key` names it in the benchmark's figures."""

    key: str
    description: str
    fit: Callable[[TableSchema, pd.DataFrame], ReferenceSampler]


@dataclass(frozen=True)
class _SdvSampler:
    schema: TableSchema
    synthesizer: Any  # sdv.single_table.BaseSingleTableSynthesizer (imported lazily)

    def sample(self, rows: int, rng: np.random.Generator) -> pd.DataFrame:
        del rng  # SDV draws from its own seeded state
        frame = self.synthesizer.sample(num_rows=rows)[SDV_TABLE]
        return self.schema.typed_frame({name: frame[name].to_numpy(dtype=object) for name in self.schema.names})


@dataclass(frozen=True)
class _MstSampler:
    schema: TableSchema
    synthesizer: Any  # snsynth.mst.MSTSynthesizer

    def sample(self, rows: int, rng: np.random.Generator) -> pd.DataFrame:
        codes = np.asarray(self.synthesizer.sample(rows), dtype=np.int64).reshape(rows, len(self.schema.columns))
        return self.schema.decode(codes, rng)


def fit_gaussian_copula(schema: TableSchema, train: pd.DataFrame) -> ReferenceSampler:
    from sdv.single_table import GaussianCopulaSynthesizer

    synthesizer = GaussianCopulaSynthesizer(_sdv_metadata(schema))
    synthesizer.fit({SDV_TABLE: _sdv_frame(schema, train)})
    return _SdvSampler(schema, synthesizer)


def fit_tvae(schema: TableSchema, train: pd.DataFrame, *, epochs: int = TVAE_EPOCHS) -> ReferenceSampler:
    from sdv.single_table import TVAESynthesizer

    from flute.synth.neural.runtime import torch_module

    torch_module()  # torch on one thread like our neural generators (spinning threads stall a busy host)
    synthesizer = TVAESynthesizer(_sdv_metadata(schema), epochs=epochs)
    synthesizer.fit({SDV_TABLE: _sdv_frame(schema, train)})
    return _SdvSampler(schema, synthesizer)


def fit_mst(schema: TableSchema, train: pd.DataFrame, *, epsilon: float, delta: float = MST_DELTA) -> ReferenceSampler:
    """smartnoise MST at (epsilon, delta) on the schema's public codes (see the module docstring)."""
    import pandas as pd
    from snsynth import Synthesizer
    from snsynth.transform import LabelTransformer, TableTransformer

    columns = list(schema.names)
    codes = pd.DataFrame(schema.discretise(train), columns=columns)
    widest = max(schema.cardinalities)
    domain = pd.DataFrame({name: np.arange(widest) % card for name, card in zip(columns, schema.cardinalities)})
    transformer = TableTransformer([LabelTransformer(nullable=False) for _ in columns])
    transformer.fit(domain)  # the public code domain, not the data
    synthesizer = Synthesizer.create("mst", epsilon=epsilon, delta=delta)
    synthesizer.fit(codes, transformer=transformer, preprocessor_eps=0.0)
    return _MstSampler(schema, synthesizer)


def _sdv_metadata(schema: TableSchema) -> Any:
    from sdv.metadata import Metadata

    columns = {c.name: {"sdtype": "numerical"} if c.kind.numeric else {"sdtype": "categorical"} for c in schema.columns}
    return Metadata.load_from_dict({"tables": {SDV_TABLE: {"columns": columns}}})


def _sdv_frame(schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as float (NaN missing), categories as their labels (None missing)."""
    import pandas as pd

    values: dict[str, object] = {}
    for column in schema.columns:
        if column.kind.numeric:
            values[column.name] = frame[column.name].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            labels = np.asarray([str(c) for c in column.categories] + ([None] if column.allow_missing else []), dtype=object)
            values[column.name] = labels[column.encode(frame[column.name].to_numpy(dtype=object))]
    return pd.DataFrame(values)


def references(*, mst_epsilon: float = 1.0, tvae_epochs: int = TVAE_EPOCHS) -> tuple[Reference, ...]:
    """The benchmark's references, keyed as the issue names them."""
    label = f"{mst_epsilon:g}".replace(".", "_")
    return (
        Reference("sdv_gaussiancopula", "SDV 2.0 GaussianCopulaSynthesizer (centralised, non-DP)", fit_gaussian_copula),
        Reference("sdv_tvae", f"SDV 2.0 TVAESynthesizer, {tvae_epochs} epochs (centralised, non-DP)", lambda s, t: fit_tvae(s, t, epochs=tvae_epochs)),
        Reference(f"mst_eps{label}", f"smartnoise MST, epsilon {mst_epsilon:g}, delta {MST_DELTA:g} (centralised)", lambda s, t: fit_mst(s, t, epsilon=mst_epsilon)),
    )

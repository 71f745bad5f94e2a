"""Guided rejection sampling: exactly `rows` rows meeting the conditions, for every neural
generator (F-HUF-17, F-IMSD-6).

A neural generator cannot condition exactly on an arbitrary range, so it is GUIDED and then
CHECKED: the conditions are turned into `Guidance` (known one-hot blocks, allowed normal-score
intervals; `TabularEncoder.guidance`) that the model may use while drawing (the diffusion model
imputes known blocks and keeps numeric estimates inside their intervals; a model may ignore it),
and every decoded row is then tested with `flute.synth.conditions.holds`, the same exact test the
CLI and the benchmark use. Rows that fail are dropped; batches are sized from the acceptance rate
seen so far (oversampling), at most `MAX_BATCHES` batches of at most `MAX_BATCH_ROWS` rows. The
result reports the achieved acceptance rate as `SampleResult.condition_probability`; requests
that cannot be met - a column no value satisfies, or too few accepted rows after the bounded
number of batches - raise ConditionError saying what was achieved.

API: `Draw` (the model's side: `draw(rows, rng, guidance) -> typed frame of exactly rows rows`)
and `sample_exactly(encoder, draw, rows, rng, conditions) -> SampleResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from flute.synth.conditions import Condition, ConditionError, holds
from flute.synth.marginal import SampleResult
from flute.synth.neural.encoding import Guidance, TabularEncoder

if TYPE_CHECKING:
    import pandas as pd

Draw = Callable[[int, np.random.Generator, Guidance], "pd.DataFrame"]

MAX_BATCHES = 30
MAX_BATCH_ROWS = 100_000
MIN_BATCH_ROWS = 1_000
#: Oversampling margin on the rows the acceptance rate so far says are still needed.
OVERSAMPLING = 1.3


def sample_exactly(
    encoder: TabularEncoder, draw: Draw, rows: int, rng: np.random.Generator, conditions: Sequence[Condition] = (),
    *, max_batches: int = MAX_BATCHES,
) -> SampleResult:
    """`rows` typed rows from `draw`, every one meeting `conditions` (see the module doc)."""
    import pandas as pd

    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    described = [c.describe() for c in conditions]
    guidance = encoder.guidance(conditions)
    if guidance.impossible:
        raise ConditionError(f"no value of column(s) {list(guidance.impossible)} meets the conditions {described}; no row can meet them")
    if not conditions:
        return SampleResult(_exact_rows(draw(rows, rng, guidance), rows), (), 1.0)
    accepted: list[pd.DataFrame] = []
    kept = drawn = 0
    batch = min(MAX_BATCH_ROWS, max(MIN_BATCH_ROWS, rows))
    for _ in range(max_batches):
        frame = _exact_rows(draw(batch, rng, guidance), batch)
        meets = holds(conditions, frame)
        accepted.append(frame[meets])
        kept, drawn = kept + int(meets.sum()), drawn + batch
        if kept >= rows:
            rows_out = pd.concat(accepted, ignore_index=True).iloc[:rows].reset_index(drop=True)
            return SampleResult(rows_out, tuple(conditions), kept / drawn)
        rate = kept / drawn
        wanted = (rows - kept) / rate * OVERSAMPLING if rate > 0 else batch * 4
        batch = int(min(MAX_BATCH_ROWS, max(MIN_BATCH_ROWS, math.ceil(wanted))))
    raise ConditionError(
        f"the conditions {described} are (near) impossible under this generator: {kept} of {drawn} drawn rows met them "
        f"(acceptance rate {kept / drawn:.2g}) after {max_batches} batches, {rows} were requested; relax the conditions "
        f"or request fewer rows"
    )


def _exact_rows(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    if len(frame) != rows:
        raise RuntimeError(f"the generator drew {len(frame)} rows when {rows} were asked for")
    return frame

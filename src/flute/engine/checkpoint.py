"""Resumable coordinator state: the completed tasks of a study plus the task in progress (its
global weights, round, optimiser state, preprocessing and class weights), written after every
round. A study that loses too many hubs stops with this file on disk; started again with the same
spec and checkpoint path, it continues from the last completed round instead of from scratch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from flute.engine.flower import Array, ArrayRecord, ConfigRecord, record_from_bytes, record_to_bytes
from flute.engine.records import Preprocessing, RecordFormatError
from flute.engine.result import StudyResult, Task

PROGRESS: Final = "flute.checkpoint"
PROGRESS_ARRAYS: Final = "flute.checkpoint.arrays"
_OPTIMISER_PREFIX: Final = "optimiser."


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used for this study; the message says why."""


@dataclass(frozen=True)
class TaskProgress:
    """The task in progress after `round` completed rounds."""

    task: Task
    round: int
    weights: np.ndarray
    optimiser_state: dict[str, np.ndarray]
    preprocessing: Preprocessing
    class_weights: tuple[float, float]


@dataclass(frozen=True)
class Checkpoint:
    completed: StudyResult
    in_progress: TaskProgress | None

    def save(self, path: Path) -> None:
        """Atomic write: a crash mid-write leaves the previous checkpoint intact."""
        record = self.completed.to_record()
        if self.in_progress is not None:
            progress = self.in_progress
            record[PROGRESS] = ConfigRecord(
                {"task": progress.task.key, "round": progress.round, "class-weights": [float(w) for w in progress.class_weights]}
            )
            arrays = {
                "weights": progress.weights,
                "means": progress.preprocessing.means,
                "scales": progress.preprocessing.scales,
                **{_OPTIMISER_PREFIX + name: value for name, value in progress.optimiser_state.items()},
            }
            record[PROGRESS_ARRAYS] = ArrayRecord({name: Array(np.ascontiguousarray(value)) for name, value in arrays.items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(record_to_bytes(record))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        try:
            record = record_from_bytes(path.read_bytes())
            completed = StudyResult.from_record(record)
        except (OSError, RecordFormatError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable study checkpoint ({exc})") from exc
        if PROGRESS not in record.config_records:
            return cls(completed, None)
        config, arrays = record.config_records[PROGRESS], record.array_records[PROGRESS_ARRAYS]
        weights_pair = config["class-weights"]
        progress = TaskProgress(
            task=Task.from_key(str(config["task"])),
            round=int(config["round"]),  # type: ignore[arg-type]
            weights=arrays["weights"].numpy(),
            optimiser_state={
                name.removeprefix(_OPTIMISER_PREFIX): array.numpy() for name, array in arrays.items() if name.startswith(_OPTIMISER_PREFIX)
            },
            preprocessing=Preprocessing(arrays["means"].numpy(), arrays["scales"].numpy()),
            class_weights=(float(weights_pair[0]), float(weights_pair[1])),  # type: ignore[index]
        )
        return cls(completed, progress)

"""Synthetic data through the researcher SDK: `client.synth` (the coordinator's /synth routes,
`flute.coordinator.synth_api`), the same operations as `flute synth` (F-IMSD-1/2/10/12/15/16,
NF-IMSD-5/7, F-HUF-14).

    job = client.synth.train("cspca-synth", ["psa", "pirads"], epsilon=1.0)   # a job, returns at once
    job.wait()                                                                # progress bar; job.cancel()
    data = client.synth.sample(job.saved_generator, rows=5000, where="cspca=1")
    frame = client.synth.download(data, "out/")                               # CSV + schema, typed frame
    client.synth.datasets(); client.synth.jobs(); client.synth.usage()        # tables in Jupyter
    client.synth.save_draft("marginal", selection_share=0.3); client.synth.reset_draft("marginal")

Only synthetic rows and aggregate figures come back. Evaluation reads real rows, so the data
owner runs it (`flute synth evaluate`); its figures (`dataset.evaluation`) and HTML report
(`report_html`) are then served with the dataset.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import pandas as pd


class _Caller(Protocol):
    def _call(self, method: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any: ...


class SynthJobFailed(RuntimeError):
    """A training job ended failed or cancelled; the message carries its error."""


@dataclass(frozen=True)
class SynthJob:
    """A training job's state as last read."""

    id: str
    study: str
    generator: str
    name: str
    state: str
    progress: float
    message: str
    error: str | None
    saved_generator: str | None  # NAME:VERSION once succeeded
    epsilon: float | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SynthJob:
        return cls(data["id"], data["study"], data["generator"], data["name"], data["state"], float(data["progress"]), data["message"],
                   data.get("error"), data.get("saved_generator"), data.get("epsilon"))

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class SyntheticDataset:
    """One dataset version: what produced it, its files' SHA-256 and (once its data owner ran
    it) its evaluation."""

    name: str
    version: int
    generator: str
    hyperparameters: dict[str, Any]
    epsilon: float | None
    delta: float | None
    study: str
    hubs: tuple[str, ...]
    conditions: str
    rows: int
    csv_sha256: str
    evaluation: dict[str, Any] | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SyntheticDataset:
        return cls(data["name"], int(data["version"]), data["generator"], dict(data["hyperparameters"]), data.get("epsilon"), data.get("delta"),
                   data["study"], tuple(data["hubs"]), data["conditions"], int(data["rows"]), data["csv_sha256"], data.get("evaluation"))

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.version}"


class _Table(ABC):
    """A read-only list of records that displays as a table (HTML in Jupyter, rich in terminals)."""

    TITLE: ClassVar[str]
    HEADERS: ClassVar[tuple[str, ...]]

    def __init__(self, records: Sequence[Any]) -> None:
        self._records = tuple(records)

    def __getitem__(self, index: int) -> Any:
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._records)

    @abstractmethod
    def _rows(self) -> Iterator[tuple[object, ...]]:
        """One tuple of cells per record, in HEADERS order."""

    def _repr_html_(self) -> str:
        from flute.sdk import _html_table

        return _html_table(self.HEADERS, self._rows())

    def __rich__(self) -> Any:
        from flute.sdk import _rich_table

        return _rich_table(self.TITLE, self.HEADERS, self._rows())


class SynthJobs(_Table):
    TITLE = "FLUTE synthetic-data jobs"
    HEADERS = ("job", "study", "generator", "state", "progress", "message", "saved as")

    def _rows(self) -> Iterator[tuple[object, ...]]:
        for job in self._records:
            yield (job.id[:8], job.study, job.generator, job.state, f"{job.progress:.0%}", job.error or job.message, job.saved_generator or "")


class SyntheticDatasets(_Table):
    TITLE = "FLUTE synthetic datasets"
    HEADERS = ("dataset", "generator", "epsilon", "rows", "conditions", "TSTR AUROC (LR)")

    def _rows(self) -> Iterator[tuple[object, ...]]:
        for d in self._records:
            tstr = "not evaluated" if d.evaluation is None else f"{d.evaluation['utility']['tstr_lr']:.3f}"
            yield (d.reference, d.generator, "none" if d.epsilon is None else f"{d.epsilon:g}", d.rows, d.conditions or "none", tstr)


class SynthJobHandle:
    """A training job started through the SDK."""

    def __init__(self, api: SynthClient, job: SynthJob) -> None:
        self._api = api
        self.id = job.id
        self.last = job

    def progress(self) -> SynthJob:
        self.last = SynthJob.from_json(self._api._caller._call("GET", f"/synth/jobs/{self.id}"))
        return self.last

    def cancel(self) -> SynthJob:
        self.last = SynthJob.from_json(self._api._caller._call("POST", f"/synth/jobs/{self.id}/cancel"))
        return self.last

    def wait(self, *, timeout_s: float = 24 * 3600.0, poll_s: float = 1.0, progress: bool = True) -> SynthJob:
        """Poll until the job ends (progress bar); SynthJobFailed unless it succeeded."""
        from rich.progress import Progress

        deadline = time.monotonic() + timeout_s
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"training {self.last.generator}", total=1.0)
            while not (job := self.progress()).finished:
                bar.update(task, completed=job.progress, description=job.message)
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"job {self.id} still {job.state} ({job.progress:.0%}) after {timeout_s:g} s")
                time.sleep(poll_s)
        if job.state != "succeeded":
            raise SynthJobFailed(f"job {self.id} {job.state}: {job.error}")
        return job

    @property
    def saved_generator(self) -> str:
        """NAME:VERSION of the generator the job saved (after `wait`)."""
        if self.last.saved_generator is None:
            raise SynthJobFailed(f"job {self.id} has saved no generator (state {self.last.state}); wait() for it first")
        return self.last.saved_generator

    def __repr__(self) -> str:
        return f"SynthJobHandle({self.id!r}, {self.last.state})"


class SynthClient:
    """`client.synth`: synthetic-data operations on the coordinator."""

    def __init__(self, caller: _Caller) -> None:
        self._caller = caller

    def generators(self) -> list[dict[str, Any]]:
        """The generator plugins: name, description, default hyperparameters."""
        return list(self._caller._call("GET", "/synth/generators"))

    def train(
        self, study: str, variables: Sequence[str], *, generator: str = "marginal", epsilon: float | None = None, delta: float = 1e-6,
        hyperparameters: Mapping[str, Any] | None = None, from_draft: bool = False, name: str | None = None, hubs: Sequence[str] | None = None,
    ) -> SynthJobHandle:
        """Start training `generator` over every hub (or `hubs`) that granted you `study`; with
        `epsilon`, each hub charges its ledger first. Returns at once with the job."""
        body = {"study": study, "variables": list(variables), "generator": generator, "epsilon": epsilon, "delta": delta,
                "hyperparameters": dict(hyperparameters or {}), "from_draft": from_draft, "name": name, "hubs": list(hubs) if hubs is not None else None}
        return SynthJobHandle(self, SynthJob.from_json(self._caller._call("POST", "/synth/jobs", json=body)))

    def jobs(self) -> SynthJobs:
        return SynthJobs([SynthJob.from_json(item) for item in self._caller._call("GET", "/synth/jobs")])

    def sample(self, generator: str, rows: int, *, where: str = "", seed: int | None = None, name: str | None = None) -> SyntheticDataset:
        """Sample a saved generator (NAME or NAME:VERSION) into a new dataset version; every row
        meets `where` exactly (e.g. 'cspca=1,age>70')."""
        body = {"generator": generator, "rows": rows, "where": where, "seed": seed, "name": name}
        return SyntheticDataset.from_json(self._caller._call("POST", "/synth/datasets", json=body))

    def datasets(self) -> SyntheticDatasets:
        return SyntheticDatasets([SyntheticDataset.from_json(item) for item in self._caller._call("GET", "/synth/datasets")])

    def download(self, dataset: SyntheticDataset, folder: Path) -> pd.DataFrame:
        """Write the dataset's CSV and schema JSON into `folder` (NAME-vVERSION.csv) and return
        it as a typed frame (checked against its schema and its registered SHA-256)."""
        import hashlib

        from flute.synth.io import read_table, schema_path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        base = f"/synth/datasets/{dataset.name}/{dataset.version}"
        csv = folder / f"{dataset.name}-v{dataset.version}.csv"
        text = self._caller._call("GET", f"{base}/csv", raw=True)
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != dataset.csv_sha256:
            raise ValueError(f"the CSV of {dataset.reference} does not match its registered SHA-256; download it again")
        csv.write_text(text, encoding="utf-8")
        schema_path(csv).write_text(self._caller._call("GET", f"{base}/schema", raw=True), encoding="utf-8")
        return read_table(csv)[0]

    def report_html(self, dataset: SyntheticDataset) -> str:
        """The dataset's HTML evaluation report (once its data owner evaluated it)."""
        return str(self._caller._call("GET", f"/synth/datasets/{dataset.name}/{dataset.version}/report", raw=True))

    def draft(self, generator: str) -> dict[str, Any]:
        """{'defaults': ..., 'draft': your saved draft or None}."""
        return dict(self._caller._call("GET", f"/synth/drafts/{generator}"))

    def save_draft(self, generator: str, **hyperparameters: Any) -> dict[str, Any]:
        """Save (merge) hyperparameters to apply later with `train(..., from_draft=True)`."""
        return dict(self._caller._call("PUT", f"/synth/drafts/{generator}", json={"hyperparameters": hyperparameters})["draft"])

    def reset_draft(self, generator: str) -> dict[str, Any]:
        """Forget your draft; returns the defaults that apply again."""
        return dict(self._caller._call("DELETE", f"/synth/drafts/{generator}")["defaults"])

    def usage(self) -> list[dict[str, Any]]:
        """Your metered usage: trainings, rows generated, evaluations, CPU seconds."""
        return list(self._caller._call("GET", "/synth/usage"))

"""The researcher's Python client, made for JupyterLab (F-HUF-1, F-PIL-16/17/18).

    import flute
    client = flute.connect("https://coordinator.example:8443", token)   # an API token (POST /auth/tokens)
    client.accept_policies()                                            # terms + privacy policy (NF-PIL-7)
    client.search("biopsy", variables=["psa", "pirads"])                # the catalogue, as a table in Jupyter
    request = client.request_access("cspca-lr", "hospital-a", "cspca-biopsies", ["psa", "pirads"],
                                    purpose="...", epsilon=3.0, delta=1e-6)
    client.wait_for_decisions([request])                                # progress bar until the hubs decide
    client.statistics("cspca-lr", ["psa", "pirads"], kind="mean", pet="dp", epsilon=0.5)   # like `flute stats run`
    study = client.submit_study(StudySpec.load("study.toml"))           # like `flute study run`
    study.wait(); study.result(); study.save_report("report.html")
    job = client.synth.train("cspca-synth", ["psa", "pirads"], epsilon=1.0)   # synthetic data (flute.sdk_synth)

Results render as HTML tables in Jupyter (`_repr_html_`) and as rich tables in terminals
(`__rich__`). Every call goes to the coordinator's REST API (`flute.coordinator.catalogue_api`,
`flute.coordinator.runs_api`); no call ever returns a patient row. An HTTP error becomes `FluteApiError` with the server's explanation.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import httpx

from flute.governance.access import AccessRequest, RequestStatus
from flute.governance.catalogue import DatasetMetadata
from flute.privacy.dp_stats import VariableEstimate

if TYPE_CHECKING:
    from flute.engine.spec import StudySpec
    from flute.sdk_synth import SynthClient

DEFAULT_TIMEOUT_S: Final[float] = 30.0


class FluteApiError(RuntimeError):
    """The coordinator refused a call or could not be reached; `status` is the HTTP status (0:
    no answer) and the message carries the server's explanation."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class PolicyText:
    kind: str
    version: int
    title: str
    markdown: str


def _html_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rich_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


class Catalogue(Sequence[DatasetMetadata]):
    """Search results: a sequence of DatasetMetadata that displays as a table."""

    HEADERS: Final = ("hub", "dataset", "title", "records", "access", "variables available")

    def __init__(self, entries: Sequence[DatasetMetadata]) -> None:
        self._entries = tuple(entries)

    def __getitem__(self, index: int) -> DatasetMetadata:  # type: ignore[override]
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[DatasetMetadata]:
        return iter(self._entries)

    def _rows(self) -> Iterator[tuple[str, ...]]:
        for entry in self._entries:
            available = ", ".join(f"{v.name} ({v.band})" for v in entry.variables if v.band != "none")
            access = "open" if entry.declaration.open_access else "on request"
            yield (entry.hub, entry.declaration.dataset, entry.declaration.title, entry.size, access, available)

    def _repr_html_(self) -> str:
        return _html_table(self.HEADERS, self._rows())

    def __rich__(self) -> Any:
        return _rich_table(f"FLUTE catalogue: {len(self)} dataset(s)", self.HEADERS, self._rows())

    def __repr__(self) -> str:
        return f"Catalogue({[entry.key for entry in self._entries]})"


class AccessRequests(Sequence[AccessRequest]):
    """Access requests with their state, displayed as a table."""

    HEADERS: Final = ("request", "study", "hub", "dataset", "fields asked", "status")

    def __init__(self, requests: Sequence[AccessRequest]) -> None:
        self._requests = tuple(requests)

    def __getitem__(self, index: int) -> AccessRequest:  # type: ignore[override]
        return self._requests[index]

    def __len__(self) -> int:
        return len(self._requests)

    def __iter__(self) -> Iterator[AccessRequest]:
        return iter(self._requests)

    def _rows(self) -> Iterator[tuple[str, ...]]:
        for r in self._requests:
            yield (r.request_id[:8], r.study, r.hub, r.dataset, ", ".join(r.fields), r.status.value)

    def _repr_html_(self) -> str:
        return _html_table(self.HEADERS, self._rows())

    def __rich__(self) -> Any:
        return _rich_table("FLUTE access requests", self.HEADERS, self._rows())

    def __repr__(self) -> str:
        return f"AccessRequests({[(r.request_id, r.status.value) for r in self._requests]})"


def _cell(value: float | None, digits: int = 4) -> str:
    return "suppressed" if value is None else f"{value:.{digits}g}"


def _estimate_details(estimate: VariableEstimate) -> str:
    parts = [f"{label}: {_cell(count, 6)}" for label, count in estimate.histogram]
    parts += [f"q{level:g} {value:.4g}" for level, value in estimate.quantiles]
    if estimate.suppressed:
        parts.append(f"[suppressed: {', '.join(estimate.suppressed)}]")
    return "; ".join(parts)


@dataclass(frozen=True)
class HubRelease:
    """One hub's part of a statistics result: its estimates (none under HE) and what its
    ledger charged (DP)."""

    hub: str
    min_cell_size: int
    estimates: tuple[VariableEstimate, ...]
    epsilon: float | None
    delta: float | None


@dataclass(frozen=True)
class StatisticsReport:
    """The answer of `Client.statistics`: per-hub and pooled estimates, what protects them,
    and the hubs that did not answer (with their reason). Same content as `flute stats run --json`."""

    study: str
    kind: str
    pet: str
    guarantee: str
    hubs: tuple[HubRelease, ...]
    pooled: tuple[VariableEstimate, ...]
    failures: tuple[tuple[str, str], ...]

    HEADERS: ClassVar[tuple[str, ...]] = ("scope", "variable", "n", "mean", "variance", "bins / quantiles")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatisticsReport:
        request = data["request"]
        hubs = tuple(
            HubRelease(
                h["hub"], int(h["min_cell_size"]), tuple(VariableEstimate.from_json(e) for e in h["estimates"]),
                h["cost"]["epsilon"] if h["cost"] else None, h["cost"]["delta"] if h["cost"] else None,
            )
            for h in data["hubs"]
        )
        return cls(
            request["study"], request["kind"], request["pet"], data["guarantee"], hubs,
            tuple(VariableEstimate.from_json(e) for e in data["pooled"]), tuple((f["hub"], f["reason"]) for f in data["failures"]),
        )

    def _rows(self) -> Iterator[tuple[str, ...]]:
        scoped = [(f"hub {h.hub}", e) for h in self.hubs for e in h.estimates] + [("pooled", e) for e in self.pooled]
        for scope, e in scoped:
            yield (scope, e.variable, _cell(e.n, 6), _cell(e.mean), _cell(e.variance), _estimate_details(e))

    def _title(self) -> str:
        return f"{self.kind} | study {self.study} | PET {self.pet}"

    def _repr_html_(self) -> str:
        notes = "".join(f"<p>not included: {html.escape(hub)}: {html.escape(reason)}</p>" for hub, reason in self.failures)
        return f"<p><b>{html.escape(self._title())}</b><br>{html.escape(self.guarantee)}</p>{_html_table(self.HEADERS, self._rows())}{notes}"

    def __rich__(self) -> Any:
        caption = self.guarantee + "".join(f"\nnot included: {hub}: {reason}" for hub, reason in self.failures)
        table = _rich_table(self._title(), self.HEADERS, self._rows())
        table.caption = caption
        return table


class StudyRunFailed(RuntimeError):
    """The coordinator's run of a submitted study failed; the message is its reason."""


@dataclass(frozen=True)
class StudyStatus:
    """Where a submitted study stands (GET /studies/{id})."""

    job_id: str
    study: str
    state: str  # queued | running | succeeded | failed
    task: str
    round: int
    max_rounds: int
    message: str
    dropped_hubs: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyStatus:
        return cls(
            data["id"], data["study"], data["state"], data["task"], int(data["round"]), int(data["max_rounds"]), data["message"],
            tuple(data["dropped_hubs"]),
        )

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed")

    def __rich__(self) -> str:
        where = f" - {self.task} round {self.round}/{self.max_rounds}" if self.task else ""
        return f"study {self.study} ({self.job_id}): {self.state}{where} {self.message}".rstrip()


@dataclass(frozen=True)
class StudyMetrics:
    """One row of a validation report: a site, the pooled model, a held-out site or a comparator."""

    group: str
    name: str
    n: int
    events: int
    auroc: float
    auroc_ci: tuple[float, float]
    calibration_intercept: float | None
    calibration_slope: float | None


@dataclass(frozen=True)
class StudyReport:
    """The validation metrics of a finished study (GET /studies/{id}/result); the HTML report is
    `StudyHandle.report_html()`."""

    study: str
    pets: tuple[str, ...]
    epsilon: float | None
    methods: str
    metrics: tuple[StudyMetrics, ...]

    HEADERS: ClassVar[tuple[str, ...]] = ("group", "name", "n", "events", "AUROC (95% CI)", "calibration intercept", "calibration slope")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyReport:
        rows = tuple(
            StudyMetrics(
                m["group"], m["name"], int(m["n"]), int(m["events"]), float(m["auroc"]), (float(m["auroc_ci"][0]), float(m["auroc_ci"][1])),
                m["calibration_intercept"], m["calibration_slope"],
            )
            for m in data["metrics"]
        )
        return cls(data["study"], tuple(data["pets"]), data["epsilon"], data["methods"], rows)

    @property
    def pooled(self) -> StudyMetrics:
        return next(m for m in self.metrics if m.group == "pooled")

    def _rows(self) -> Iterator[tuple[str, ...]]:
        for m in self.metrics:
            yield (
                m.group, m.name, str(m.n), str(m.events), f"{m.auroc:.3f} ({m.auroc_ci[0]:.3f}-{m.auroc_ci[1]:.3f})",
                _cell(m.calibration_intercept, 3), _cell(m.calibration_slope, 3),
            )

    def _repr_html_(self) -> str:
        return f"<p><b>study {html.escape(self.study)}</b></p>{_html_table(self.HEADERS, self._rows())}<p>{html.escape(self.methods)}</p>"

    def __rich__(self) -> Any:
        return _rich_table(f"FLUTE study {self.study}: validation", self.HEADERS, self._rows())


class StudyHandle:
    """A study the coordinator runs for you: `progress()`, `wait()`, `result()`, `report_html()`."""

    def __init__(self, client: Client, status: StudyStatus) -> None:
        self._client = client
        self.job_id = status.job_id
        self.study = status.study

    def progress(self) -> StudyStatus:
        return StudyStatus.from_json(self._client._call("GET", f"/studies/{self.job_id}"))

    def wait(self, *, timeout_s: float = 24 * 3600.0, poll_s: float = 2.0, progress: bool = True) -> StudyStatus:
        """Poll until the study finishes (a progress bar follows its training rounds);
        StudyRunFailed if it failed, TimeoutError if `timeout_s` passes first."""
        from rich.progress import BarColumn, Progress, TextColumn

        deadline = time.monotonic() + timeout_s
        with Progress(TextColumn("{task.description}"), BarColumn(), disable=not progress, transient=True) as bar:
            task = bar.add_task(f"study {self.study}: queued", total=None)
            while True:
                status = self.progress()
                bar.update(task, completed=status.round, total=status.max_rounds or None, description=f"study {self.study}: {status.state} {status.task}".rstrip())
                if status.state == "failed":
                    raise StudyRunFailed(f"study {self.study} ({self.job_id}) failed: {status.message}")
                if status.done:
                    return status
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"study {self.study} ({self.job_id}) still {status.state} after {timeout_s:g} s")
                time.sleep(poll_s)

    def result(self) -> StudyReport:
        return StudyReport.from_json(self._client._call("GET", f"/studies/{self.job_id}/result"))

    def report_html(self) -> str:
        """The self-contained HTML validation report (as `flute study run --out` writes it)."""
        return str(self._client._call("GET", f"/studies/{self.job_id}/report", raw=True))

    def save_report(self, path: Path) -> Path:
        Path(path).write_text(self.report_html(), encoding="utf-8")
        return Path(path)

    def __repr__(self) -> str:
        return f"StudyHandle({self.study!r}, job={self.job_id!r})"


class Client:
    """A researcher's session with the coordinator (one API token)."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def synth(self) -> SynthClient:
        """Synthetic data: train generators, sample datasets, drafts, jobs, usage (`flute.sdk_synth`)."""
        from flute.sdk_synth import SynthClient

        return SynthClient(self)

    def me(self) -> dict[str, Any]:
        """Who the token authenticates: user id, organisation, roles."""
        return dict(self._call("GET", "/auth/me"))

    # -- policies (NF-PIL-7) -------------------------------------------------------------------

    def pending_policies(self) -> list[PolicyText]:
        """The current terms / privacy policy versions this user has not accepted yet."""
        return [PolicyText(p["kind"], int(p["version"]), p["title"], p["markdown"]) for p in self._call("GET", "/policies/pending")]

    def accept_policies(self) -> list[PolicyText]:
        """Accept every pending policy (read them first: `pending_policies()`); returns them."""
        pending = self.pending_policies()
        for policy in pending:
            self._call("POST", f"/policies/{policy.kind}/{policy.version}/accept")
        return pending

    # -- catalogue (F-PIL-16/18) ---------------------------------------------------------------

    def search(self, text: str = "", *, variables: Sequence[str] = (), min_band: str = "<50%") -> Catalogue:
        """Datasets whose hub, id, title or description contain every word of `text` and that
        offer each of `variables` with at least `min_band` non-missing values."""
        params: list[tuple[str, str]] = [("q", text), ("min_band", min_band), *(("variable", v) for v in variables)]
        found = self._call("GET", "/catalogue", params=params)
        return Catalogue([DatasetMetadata.from_json(item, source="catalogue search result") for item in found])

    def dataset(self, hub: str, dataset: str) -> DatasetMetadata:
        """One catalogue entry, with its conditions of use and guidance (markdown)."""
        return DatasetMetadata.from_json(self._call("GET", f"/catalogue/{hub}/{dataset}"), source=f"catalogue entry {hub}/{dataset}")

    # -- access requests (NF-PIL-9) ------------------------------------------------------------

    def request_access(
        self, study: str, hub: str, dataset: str, fields: Sequence[str], *, purpose: str, epsilon: float, delta: float = 0.0,
    ) -> AccessRequest:
        """Ask the data owner of `hub` for `fields` of `dataset` for `study`, with the privacy
        budget you need; the owner may grant fewer fields or a smaller budget."""
        body = {"study": study, "hub": hub, "dataset": dataset, "fields": list(fields), "purpose": purpose, "epsilon": epsilon, "delta": delta}
        return AccessRequest.from_json(self._call("POST", "/access-requests", json=body))

    def access_requests(self) -> AccessRequests:
        return AccessRequests([AccessRequest.from_json(item) for item in self._call("GET", "/access-requests")])

    def wait_for_decisions(self, requests: Sequence[AccessRequest], *, timeout_s: float = 3600.0, poll_s: float = 5.0, progress: bool = True) -> AccessRequests:
        """Poll until every request is approved or rejected (a progress bar counts decisions);
        TimeoutError if `timeout_s` passes first."""
        from rich.progress import Progress

        wanted = {request.request_id for request in requests}
        deadline = time.monotonic() + timeout_s
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("waiting for the data owners' decisions", total=len(wanted))
            while True:
                current = [r for r in self.access_requests() if r.request_id in wanted]
                decided = [r for r in current if r.status is not RequestStatus.PENDING]
                bar.update(task, completed=len(decided))
                if len(decided) == len(wanted):
                    return AccessRequests(current)
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{len(wanted) - len(decided)} of {len(wanted)} access request(s) still pending after {timeout_s:g} s")
                time.sleep(poll_s)

    # -- statistics and studies (F-PIL-16/17/21): aggregates only, never rows --------------------

    def statistics(
        self, study: str, variables: Sequence[str], *, kind: str = "mean", pet: str = "dp", epsilon: float | None = None,
        min_hubs: int = 1, hubs: Sequence[str] | None = None,
    ) -> StatisticsReport:
        """`flute stats run` through the coordinator: `kind` (count | mean | variance | histogram |
        quantiles) of `variables` at every hub (or `hubs`) that granted you `study`; under 'dp'
        each hub spends `epsilon` of the study's budget."""
        body = {"study": study, "variables": list(variables), "kind": kind, "pet": pet, "epsilon": epsilon, "min_hubs": min_hubs,
                "hubs": list(hubs) if hubs is not None else None}
        return StatisticsReport.from_json(self._call("POST", "/statistics", json=body))

    def submit_study(self, spec: StudySpec | Path, *, hubs: Sequence[str] | None = None) -> StudyHandle:
        """`flute study run` through the coordinator: queue the study (a StudySpec or a spec
        file) over every hub (or `hubs`) that granted it; returns at once with a handle."""
        from flute.engine.spec import StudySpec

        loaded = spec if isinstance(spec, StudySpec) else StudySpec.load(Path(spec))
        body = {"spec": json.loads(loaded.to_json()), "hubs": list(hubs) if hubs is not None else None}
        return StudyHandle(self, StudyStatus.from_json(self._call("POST", "/studies", json=body)))

    def _call(self, method: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise FluteApiError(0, f"the coordinator at {self._http.base_url} did not answer {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise FluteApiError(response.status_code, f"{method} {path} refused (HTTP {response.status_code}): {detail}")
        if raw:
            return response.text
        return None if response.status_code == 204 else response.json()


def connect(url: str, token: str, *, verify: bool | str = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> Client:
    """A client of the coordinator at `url` with an API token; checks the token at once."""
    client = Client(httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s, verify=verify))
    client.me()
    return client

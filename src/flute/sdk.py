"""The researcher's Python client, made for JupyterLab (F-HUF-1, F-PIL-16/17/18).

    import flute
    client = flute.connect("https://coordinator.example:8443", token)   # an API token (POST /auth/tokens)
    client.accept_policies()                                            # terms + privacy policy (NF-PIL-7)
    client.search("biopsy", variables=["psa", "pirads"])                # the catalogue, as a table in Jupyter
    request = client.request_access("cspca-lr", "hospital-a", "cspca-biopsies", ["psa", "pirads"],
                                    purpose="...", epsilon=3.0, delta=1e-6)
    client.wait_for_decisions([request])                                # progress bar until the hubs decide

Results render as HTML tables in Jupyter (`_repr_html_`) and as rich tables in terminals
(`__rich__`). Every call goes to the coordinator's REST API (`flute.coordinator.catalogue_api`);
an HTTP error becomes `FluteApiError` with the server's explanation.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from flute.governance.access import AccessRequest, RequestStatus
from flute.governance.catalogue import DatasetMetadata

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

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
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
        return None if response.status_code == 204 else response.json()


def connect(url: str, token: str, *, verify: bool | str = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> Client:
    """A client of the coordinator at `url` with an API token; checks the token at once."""
    client = Client(httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s, verify=verify))
    client.me()
    return client

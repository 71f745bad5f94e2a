"""Reading a hospital's FHIR server over REST: search every resource type, page by page
(F-STD-9: hospitals expose their data as FHIR; F-HUF-19, F-PIL-5: a defined way into the hub).

Paging follows the server's Bundle.link relation "next" (absolute or relative to the page URL),
never a page counter of our own, as FHIR R4 prescribes (http.html#paging). Each searchset entry
is its own non-atomic ImportUnit - a search result has no transaction semantics - with the page
URL and entry index as its location, parsed by the same reader code as files (readers.py), so an
unreadable entry is quarantined like a bad line of an NDJSON file.

Transient failures - connection errors, timeouts, 429 and 5xx - are retried with exponential
back-off and jitter, honouring Retry-After; a permanent refusal (any other 4xx) stops at once
with a FhirServerError that says what was asked, where, why it failed and how to fix it.
Credentials (e.g. `Authorization: Bearer ...`) go in `headers`; they are sent to the server named
by `base_url` only: a `next` link to another origin is refused rather than followed.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from flute.fhir.readers import document_units
from flute.fhir.source import ImportUnit

DEFAULT_RESOURCE_TYPES: Final[tuple[str, ...]] = ("Patient", "Procedure", "Observation", "FamilyMemberHistory")
#: Longest back-off between two attempts, and longest Retry-After the reader agrees to wait.
MAX_BACKOFF_S: Final[float] = 60.0
MAX_RETRY_AFTER_S: Final[float] = 300.0
_RESOURCE_TYPE: Final = re.compile(r"[A-Z][A-Za-z]+")
_TRANSIENT_STATUS: Final = frozenset({429, 500, 502, 503, 504})
_FIX_BY_STATUS: Final[Mapping[int, str]] = {
    400: "the server rejected the search parameters; check that it supports _count searches on this resource type",
    401: "the server requires authentication: send a valid 'Authorization: Bearer <token>' header (headers= in Python, --fhir-header on the command line)",
    403: "the credentials are valid but may not read this resource type; ask the server's administrator for read access",
    404: "nothing is served there: check that base_url is the FHIR base (e.g. https://host/fhir/R4) and that the server supports this resource type",
    410: "the server says this endpoint is gone; ask its administrator for the current FHIR base URL",
}


class FhirServerError(RuntimeError):
    """A FHIR server refused a request for good, kept failing, or answered with something that is
    not a search result. `url` is the request, `status` the last HTTP status (None: no response)."""

    def __init__(self, message: str, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


def iter_units_from_server(
    base_url: str,
    *,
    resource_types: Sequence[str] = DEFAULT_RESOURCE_TYPES,
    headers: Mapping[str, str] | None = None,
    page_size: int = 500,
    max_retries: int = 5,
    backoff_s: float = 0.5,
    timeout_s: float = 30,
) -> Iterator[ImportUnit]:
    """Every resource of `resource_types` on the server at `base_url`, one ImportUnit per
    searchset entry, type by type in the given order. Raises FhirServerError (see module doc);
    ValueError for arguments that cannot work."""
    base = _checked_base(base_url)
    for resource_type in resource_types:
        if not _RESOURCE_TYPE.fullmatch(resource_type):
            raise ValueError(f"{resource_type!r} is not a FHIR resource type name (e.g. Observation)")
    if page_size < 1 or max_retries < 0 or backoff_s < 0 or timeout_s <= 0:
        raise ValueError(
            f"page_size must be >= 1, max_retries and backoff_s >= 0, timeout_s > 0; got page_size={page_size}, "
            f"max_retries={max_retries}, backoff_s={backoff_s}, timeout_s={timeout_s}"
        )
    request_headers = {"Accept": "application/fhir+json", **(headers or {})}
    with httpx.Client(headers=request_headers, timeout=timeout_s) as client:
        for resource_type in resource_types:
            url: str | None = f"{base}/{resource_type}?_count={page_size}"
            followed: set[str] = set()
            while url is not None:
                followed.add(url)
                data = _get_with_retries(client, url, max_retries, backoff_s)
                bundle = _searchset(data, url)
                yield from document_units(data, url)
                url = _next_page(bundle, url, base, followed)


def _checked_base(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"base_url must be the http(s) URL of a FHIR server's base, e.g. https://host/fhir/R4; got {base_url!r}")
    return base_url.rstrip("/")


def _get_with_retries(client: httpx.Client, url: str, max_retries: int, backoff_s: float) -> bytes:
    """The body of a 200 answer to GET `url`, retrying transient failures."""
    attempt = 0
    while True:
        try:
            response = client.get(url)
        except httpx.TransportError as error:
            if attempt >= max_retries:
                raise FhirServerError(
                    f"GET {url} failed after {attempt + 1} attempts: {type(error).__name__}: {error}; check that the "
                    "server is running and reachable from this host, or raise max_retries/timeout_s",
                    url,
                ) from error
            delay = _backoff(attempt, backoff_s)
        else:
            if response.status_code == 200:
                return response.content
            if response.status_code not in _TRANSIENT_STATUS:
                raise _refusal(url, response)
            if attempt >= max_retries:
                raise FhirServerError(
                    f"GET {url} failed after {attempt + 1} attempts, last with HTTP {response.status_code}"
                    f"{_outcome_text(response)}; the server is overloaded or failing - retry later or raise max_retries",
                    url,
                    response.status_code,
                )
            delay = _retry_after(response, url)
            if delay is None:
                delay = _backoff(attempt, backoff_s)
        time.sleep(delay)
        attempt += 1


def _backoff(attempt: int, backoff_s: float) -> float:
    """Exponential back-off with jitter (50-100 % of the step), so many clients do not retry in step."""
    step = min(backoff_s * (2**attempt), MAX_BACKOFF_S)
    return step * (0.5 + 0.5 * random.random())


def _retry_after(response: httpx.Response, url: str) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or HTTP-date), None when it did not say."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    if seconds > MAX_RETRY_AFTER_S:
        raise FhirServerError(
            f"GET {url}: HTTP {response.status_code} with Retry-After {value!r} ({seconds:.0f} s), longer than the "
            f"{MAX_RETRY_AFTER_S:.0f} s this reader waits; run the import again when the server accepts requests",
            url,
            response.status_code,
        )
    return seconds


def _refusal(url: str, response: httpx.Response) -> FhirServerError:
    status = response.status_code
    fix = _FIX_BY_STATUS.get(status, "the request cannot succeed as sent; see the server's message")
    return FhirServerError(f"GET {url} was refused with HTTP {status} {response.reason_phrase}{_outcome_text(response)}: {fix}", url, status)


def _outcome_text(response: httpx.Response) -> str:
    """The server's own explanation from an OperationOutcome body, if it sent one."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    texts = []
    for issue in body.get("issue") or []:
        if isinstance(issue, dict):
            details = issue.get("details")
            text = issue.get("diagnostics") or (details.get("text") if isinstance(details, dict) else None)
            if isinstance(text, str):
                texts.append(text)
    return f" ({'; '.join(texts)})" if texts else ""


def _searchset(data: bytes, url: str) -> dict[str, Any]:
    try:
        bundle = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise FhirServerError(f"GET {url} answered 200 with a body that is not JSON ({error}); is base_url a FHIR server?", url, 200) from error
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
        found = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        kind = bundle.get("type") if isinstance(bundle, dict) else None
        raise FhirServerError(
            f"GET {url} answered 200 with {found}{f' ({kind})' if kind else ''}, not a searchset Bundle; "
            "check that base_url is the FHIR base and the server implements search",
            url,
            200,
        )
    return bundle


def _next_page(bundle: dict[str, Any], url: str, base: str, followed: set[str]) -> str | None:
    """The absolute URL of the next page (Bundle.link relation "next"), None on the last page."""
    links = bundle.get("link")
    target = next(
        (link.get("url") for link in links if isinstance(link, dict) and link.get("relation") == "next"),
        None,
    ) if isinstance(links, list) else None
    if target is None:
        return None
    if not isinstance(target, str) or not target:
        raise FhirServerError(f"GET {url}: the 'next' link has no URL ({target!r}); the server's paging is broken", url, 200)
    absolute = urljoin(url, target)
    if urlsplit(absolute)[:2] != urlsplit(base)[:2]:
        raise FhirServerError(
            f"GET {url}: the 'next' link points to another server ({absolute}); it is not followed so that the "
            "credentials for the base URL are not sent elsewhere - configure the server's public base URL",
            url,
            200,
        )
    if absolute in followed:
        raise FhirServerError(f"GET {url}: the 'next' link leads back to a page already read ({absolute}); the server's paging loops", url, 200)
    return absolute

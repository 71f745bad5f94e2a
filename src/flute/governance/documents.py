"""Platform documents: terms & conditions and privacy policy, each in numbered versions that
users must accept (NF-PIL-7), and platform-wide guidance documents (F-PIL-19), plus the one safe
way to turn owner- or operator-written markdown into HTML.

The texts ship as markdown files in `flute/governance/texts/`: `terms-N.md`, `privacy-N.md`
(the highest N is the current version; publishing a new version is adding a file, after which
every user must accept again) and `guidance-SLUG.md`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Final

from markupsafe import Markup

TEXTS_DIR: Final[Path] = Path(__file__).parent / "texts"
_VERSIONED = re.compile(r"^(?P<kind>terms|privacy)-(?P<version>[1-9][0-9]*)\.md$")
_GUIDANCE = re.compile(r"^guidance-(?P<slug>[a-z0-9-]+)\.md$")


class PolicyKind(str, Enum):
    TERMS = "terms"
    PRIVACY = "privacy"


@dataclass(frozen=True)
class PolicyDocument:
    kind: PolicyKind
    version: int
    markdown: str

    @property
    def title(self) -> str:
        return _title(self.markdown, self.kind.value)


@dataclass(frozen=True)
class GuidanceDocument:
    slug: str
    markdown: str

    @property
    def title(self) -> str:
        return _title(self.markdown, self.slug)


def render_markdown(text: str) -> Markup:
    """CommonMark to HTML with raw HTML disabled (it is shown escaped, never interpreted) and
    links limited to markdown-it's safe schemes (no javascript:, vbscript:, data: except images):
    owners' texts cannot inject script into the pages of other users."""
    from markdown_it import MarkdownIt

    return Markup(MarkdownIt("commonmark", {"html": False}).render(text))


@lru_cache(maxsize=1)
def policy_documents() -> dict[PolicyKind, tuple[PolicyDocument, ...]]:
    """Every shipped version of each policy, oldest first."""
    found: dict[PolicyKind, list[PolicyDocument]] = {kind: [] for kind in PolicyKind}
    for path in TEXTS_DIR.iterdir():
        match = _VERSIONED.match(path.name)
        if match:
            kind = PolicyKind(match["kind"])
            found[kind].append(PolicyDocument(kind, int(match["version"]), path.read_text(encoding="utf-8")))
    missing = [kind.value for kind, versions in found.items() if not versions]
    if missing:
        raise RuntimeError(f"no shipped version of {missing} in {TEXTS_DIR}: the platform cannot ask users to accept them")
    return {kind: tuple(sorted(versions, key=lambda doc: doc.version)) for kind, versions in found.items()}


def current_policy(kind: PolicyKind) -> PolicyDocument:
    return policy_documents()[kind][-1]


def policy_version(kind: PolicyKind, version: int) -> PolicyDocument:
    for document in policy_documents()[kind]:
        if document.version == version:
            return document
    raise KeyError(f"{kind.value} version {version} does not exist; versions: {[d.version for d in policy_documents()[kind]]}")


@lru_cache(maxsize=1)
def guidance_documents() -> tuple[GuidanceDocument, ...]:
    """Platform-wide guidance (F-PIL-19), ordered by slug; per-dataset guidance is part of each
    dataset's declaration."""
    documents = []
    for path in sorted(TEXTS_DIR.iterdir()):
        match = _GUIDANCE.match(path.name)
        if match:
            documents.append(GuidanceDocument(match["slug"], path.read_text(encoding="utf-8")))
    return tuple(documents)


def _title(markdown: str, fallback: str) -> str:
    for line in markdown.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback

"""Declare and read what a plugin asks its users to cite.

A plugin ships a ``CITATION.cff`` (Citation File Format) as package data, or defines
``citation()`` (returning a :class:`Citation`) in its top package. :func:`read_citation` returns
it without importing torch, and :meth:`Citation.as_record` gives the JSON the run record copies.
The paper in ``preferred-citation`` wins over the software entry, since that is what to cite.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module, resources
from typing import Any

from asklepios_sdk.errors import AsklepiosError

__all__ = ["Citation", "CitationError", "read_citation"]

_BIBTEX_TYPES = {
    "article": "article",
    "conference-paper": "inproceedings",
    "proceedings": "inproceedings",
    "software": "software",
    "book": "book",
    "thesis": "phdthesis",
    "report": "techreport",
    "generic": "misc",
}


class CitationError(AsklepiosError):
    """A plugin's citation declaration cannot be read (the message names the file and field)."""


def _author(entry: Mapping[str, Any]) -> str:
    if "family-names" in entry:
        given = entry.get("given-names")
        return f"{entry['family-names']}, {given}" if given else str(entry["family-names"])
    return str(entry.get("name", "")).strip()


@dataclass(frozen=True)
class Citation:
    """A work to cite: the fields a BibTeX entry and the run record need.

    Attributes:
        title: title of the paper or software.
        authors: ``"Family, Given"`` names in order.
        year: publication year.
        venue: journal, conference or collection.
        doi: DOI without the resolver prefix.
        url: where to read it.
        kind: CFF type (``article``, ``conference-paper``, ``software``, ...).
        key: BibTeX key; default ``<first family name><year>``.
    """

    title: str
    authors: tuple[str, ...] = ()
    year: int | None = None
    venue: str | None = None
    doi: str | None = None
    url: str | None = None
    kind: str = "article"
    key: str | None = None

    @classmethod
    def from_cff(cls, data: Mapping[str, Any], source: str = "CITATION.cff") -> Citation:
        """Build from parsed CFF, preferring its ``preferred-citation`` (the paper)."""
        entry = data.get("preferred-citation") or data
        if not isinstance(entry, Mapping) or not entry.get("title"):
            raise CitationError(f"{source}: the citation has no 'title'")
        year = entry.get("year") or str(entry.get("date-released", ""))[:4] or None
        venue = entry.get("journal") or entry.get("conference") or entry.get("collection-title")
        if isinstance(venue, Mapping):
            venue = venue.get("name")
        return cls(
            title=str(entry["title"]),
            authors=tuple(_author(a) for a in entry.get("authors", []) if isinstance(a, Mapping)),
            year=int(year) if year else None,
            venue=str(venue) if venue else None,
            doi=str(entry["doi"]) if entry.get("doi") else None,
            url=str(entry["url"]) if entry.get("url") else None,
            kind=str(entry.get("type", "software" if entry is data else "article")),
        )

    def bibtex_key(self) -> str:
        """Return the BibTeX key: :attr:`key`, else first family name + year."""
        if self.key:
            return self.key
        family = self.authors[0].split(",")[0] if self.authors else "anonymous"
        return re.sub(r"[^A-Za-z0-9]", "", family).lower() + str(self.year or "")

    def to_bibtex(self) -> str:
        """Return a BibTeX entry for this work."""
        entry_type = _BIBTEX_TYPES.get(self.kind, "misc")
        venue_field = {"article": "journal", "inproceedings": "booktitle"}.get(entry_type, "note")
        fields: list[tuple[str, str | None]] = [("title", self.title)]
        fields += [("author", " and ".join(self.authors))]
        fields += [("year", str(self.year) if self.year else None), (venue_field, self.venue)]
        fields += [("doi", self.doi), ("url", self.url)]
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
        return f"@{entry_type}{{{self.bibtex_key()},\n{body}\n}}"

    def as_record(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (with the BibTeX) for the run record."""
        return {
            "title": self.title,
            "authors": list(self.authors),
            "year": self.year,
            "venue": self.venue,
            "doi": self.doi,
            "url": self.url,
            "bibtex": self.to_bibtex(),
        }


def read_citation(package: str) -> Citation | None:
    """Return what ``package`` (a plugin's top package) asks to be cited, or None.

    A ``citation()`` function in the package wins; otherwise its ``CITATION.cff`` package data is
    parsed. Raises CitationError when a declaration exists but cannot be read.
    """
    module = import_module(package)
    declared = getattr(module, "citation", None)
    if callable(declared):
        value = declared()
        if not isinstance(value, Citation):
            raise CitationError(
                f"{package}.citation() returned {type(value).__name__}; return a "
                "asklepios_sdk.citation.Citation"
            )
        return value
    if not hasattr(module, "__path__"):  # a single-module plugin has no package data
        return None
    resource = resources.files(package).joinpath("CITATION.cff")
    if not resource.is_file():
        return None
    import yaml  # type: ignore[import-untyped,unused-ignore]

    source = f"{package}/CITATION.cff"
    try:
        data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise CitationError(f"{source} is not valid YAML: {err}") from err
    if not isinstance(data, Mapping):
        raise CitationError(f"{source} is not a mapping of CFF fields")
    return Citation.from_cff(data, source)

"""Citations: CFF parsing (paper preferred), citation() declarations, BibTeX, record JSON."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from asklepios_sdk.citation import Citation, CitationError, read_citation

CFF = textwrap.dedent(
    """
    cff-version: 1.2.0
    title: asklepios-polyloss
    message: If you use this software, please cite the paper.
    authors:
      - name: Example Lab
    preferred-citation:
      type: conference-paper
      title: "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions"
      authors:
        - family-names: Leng
          given-names: Zhaoqi
        - family-names: Tan
          given-names: Mingxing
      collection-title: International Conference on Learning Representations
      year: 2022
      url: https://openreview.net/forum?id=gSdSJoenupI
    """
)


def _package(root: Path, name: str, init: str = "", cff: str | None = None) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(init)
    if cff is not None:
        (root / name / "CITATION.cff").write_text(cff)


def test_cff_prefers_the_paper_and_formats_bibtex(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _package(tmp_path, "cite_pkg_a", cff=CFF)
    citation = read_citation("cite_pkg_a")
    assert citation is not None
    assert citation.authors == ("Leng, Zhaoqi", "Tan, Mingxing")
    assert citation.year == 2022 and citation.kind == "conference-paper"
    bibtex = citation.to_bibtex()
    assert bibtex.startswith("@inproceedings{leng2022,\n")
    assert "  booktitle = {International Conference on Learning Representations}" in bibtex
    assert "  author = {Leng, Zhaoqi and Tan, Mingxing}" in bibtex
    record = json.loads(json.dumps(citation.as_record()))
    assert record["bibtex"] == bibtex


def test_citation_function_wins_and_missing_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    init = (
        "from asklepios_sdk.citation import Citation\n"
        "def citation():\n"
        "    return Citation(title='T', authors=('Doe, J',), year=2020, venue='J')\n"
    )
    _package(tmp_path, "cite_pkg_b", init=init, cff=CFF)
    assert read_citation("cite_pkg_b") == Citation("T", ("Doe, J",), 2020, "J")
    _package(tmp_path, "cite_pkg_c")
    assert read_citation("cite_pkg_c") is None


def test_bad_declarations_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _package(tmp_path, "cite_pkg_d", cff="title: [unclosed")
    with pytest.raises(CitationError, match="not valid YAML"):
        read_citation("cite_pkg_d")
    _package(tmp_path, "cite_pkg_e", cff="cff-version: 1.2.0\n")
    with pytest.raises(CitationError, match="no 'title'"):
        read_citation("cite_pkg_e")
    _package(tmp_path, "cite_pkg_f", init="def citation():\n    return 'a string'\n")
    with pytest.raises(CitationError, match="returned str"):
        read_citation("cite_pkg_f")


def test_single_module_plugin_has_no_citation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lonely_plugin_module.py").write_text('"""A plugin that is one module."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert read_citation("lonely_plugin_module") is None

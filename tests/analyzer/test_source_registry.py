"""The ``--traces`` registry: readers register by scheme or path test; ``open_source`` only asks it."""

from __future__ import annotations

from pathlib import Path

import pytest
from wsanalyze.sources import Query, ReadResult, SourceError, base, open_source, register_path
from wsanalyze.sources.otlp_files import OtlpFilesReader
from wsanalyze.sources.store import CompactedStore


class FakeReader:
    """A reader that answers nothing; records the path it was opened with."""

    def __init__(self, path: Path):
        self.path = path
        self.description = f"fake {path}"

    def read(self, query: Query) -> ReadResult:
        raise NotImplementedError


@pytest.fixture(autouse=True)
def restore_registry(monkeypatch):
    """Each test registers into a copy, so the package's own registrations survive it."""
    monkeypatch.setattr(base, "_PATHS", dict(base._PATHS))
    monkeypatch.setattr(base, "_SCHEMES", dict(base._SCHEMES))


def test_importing_the_package_registers_every_reader():
    assert {"jaeger", "tempo"} <= set(base._SCHEMES)
    assert {"compacted store", "OTLP files"} <= set(base._PATHS)


def test_a_path_claimed_by_no_specific_reader_opens_as_otlp_files(tmp_path):
    (tmp_path / "a.jsonl").write_text("")
    assert isinstance(open_source(tmp_path), OtlpFilesReader)


def test_a_store_directory_opens_as_the_compacted_store(tmp_path):
    (tmp_path / "manifest.json").write_text('{"format": 2, "parts": []}')
    assert isinstance(open_source(tmp_path), CompactedStore)


def test_a_higher_priority_path_reader_is_asked_first(tmp_path):
    register_path("fake", lambda path: path.suffix == ".fake", FakeReader, priority=1)
    (tmp_path / "x.fake").write_text("")
    (tmp_path / "y.jsonl").write_text("")
    assert isinstance(open_source(tmp_path / "x.fake"), FakeReader)
    assert isinstance(open_source(tmp_path / "y.jsonl"), OtlpFilesReader)


def test_a_scheme_registered_later_opens_its_urls():
    base.register_scheme("fake", lambda spec: FakeReader(Path(spec)))
    assert isinstance(open_source("fake://anything"), FakeReader)
    with pytest.raises(SourceError, match=r"fake://, jaeger://, tempo://"):
        open_source("nope://x")


def test_with_no_reader_for_a_path_the_error_names_the_readers(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "_PATHS", {})
    register_path("fake", lambda path: False, FakeReader)
    with pytest.raises(SourceError, match=r"no trace reader takes .* \(readers: fake\)"):
        open_source(tmp_path)

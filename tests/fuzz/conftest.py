"""Fixtures of the fuzzers: no compacted store, and one scratch directory per module.

Hypothesis runs a test many times within one pytest call, so a function-scoped
``tmp_path`` would be shared by every example anyway; ``scratch`` is a module's
directory that each example empties first (``reading.fresh``), which also spares the
file system thousands of directories.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="module")
def _no_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No compacted store answers for the files read here (nor any user's ./.wsanalyze)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WSANALYZE_STORE", str(tmp_path_factory.mktemp("fuzz") / "no-store"))
        patch.delenv("WSANALYZE_DEBUG", raising=False)
        yield


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for this module's examples (empty it with ``reading.fresh``)."""
    return tmp_path_factory.mktemp("examples")

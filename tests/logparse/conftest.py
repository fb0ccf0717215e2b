"""Session fixture: real Redis, Daphne and Celery output, captured once."""

from __future__ import annotations

import pytest

from tests.logparse.capture import Captured, capture


@pytest.fixture(scope="session")
def captured(tmp_path_factory) -> Captured:
    """What the real processes printed while the capture drove every line kind."""
    return capture(tmp_path_factory.mktemp("captured"))

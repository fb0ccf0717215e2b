"""The answers a doctor check gives, shared by ``manage.py wstrace doctor`` and ``wsanalyze doctor``.

The analyzer reads these words in the JSON the Django side prints and adds checks of its
own, so both sides take them from here. The module imports nothing, and importing it
(which runs ``wstrace.doctor``'s ``__init__``) loads neither Django nor the OpenTelemetry
SDK: the analyzer may live in an environment without them.
"""

from __future__ import annotations

from typing import Final

PASS: Final = "pass"
FAIL: Final = "fail"  # the only answer that makes the doctor exit 1 (`ok` False)
WARN: Final = "warn"
SKIP: Final = "skip"  # the check does not apply to this project (no Redis layer, no Celery)
STATUSES: Final = (PASS, FAIL, WARN, SKIP)

"""The plugin is a ``pytest11`` entry point: any pytest session gets the ``wstrace`` fixture."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

PLAIN_TESTS = """
import pytest
from wstrace import runtime
from wstrace.instrumentors import ChannelsInstrumentor


def test_the_fixture_turns_wstrace_on_for_the_test(wstrace):
    assert runtime.active()
    assert wstrace.spans == [] and wstrace.conversations() == []
    assert wstrace.lost().lost == 0


def test_asserting_delivery_of_nothing_fails_saying_nothing_was_seen(wstrace):
    with pytest.raises(AssertionError, match="no conversation was seen in this test"):
        wstrace.assert_delivered()


def test_an_unknown_conversation_fails_naming_it(wstrace):
    with pytest.raises(AssertionError, match="conversation 'nope' was not seen in this test"):
        wstrace.assert_delivered("nope")


def test_without_the_fixture_wstrace_is_off_again():
    assert not runtime.active()
    assert not ChannelsInstrumentor().is_instrumented_by_opentelemetry


def test_a_failing_test_has_its_spans_saved(wstrace):
    assert False, "planted"


def test_a_passing_test_has_nothing_saved(wstrace):
    pass
"""


def test_the_plugin_is_a_pytest11_entry_point_of_the_distribution():
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "wstrace"]
    assert entry.value == "wsanalyze.pytest_plugin"
    assert entry.dist is not None and entry.dist.name == "wstrace"


def test_loading_the_plugin_imports_neither_the_analysis_nor_django_nor_the_sdk():
    """Every pytest session of an environment with wstrace loads it: it must cost nothing."""
    code = "import json, sys, wsanalyze.pytest_plugin; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(done.stdout)
    heavy = ("polars", "django", "opentelemetry.sdk", "wsanalyze.analysis", "wstrace.runtime")
    assert [m for m in loaded if m.startswith(heavy)] == []


def test_a_suite_without_any_conftest_gets_the_fixture(pytester):
    pytester.makeini("[pytest]\nwstrace_save_dir = saved\n")
    pytester.makepyfile(test_plain=PLAIN_TESTS)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.stdout.fnmatch_lines(["plugins:*wstrace-*"])
    result.assert_outcomes(passed=5, failed=1)
    saved = sorted(p.name for p in (pytester.path / "saved").iterdir())
    assert saved == ["test_plain.py_test_a_failing_test_has_its_spans_saved"]
    assert (pytester.path / "saved" / saved[0] / "in-process.jsonl").is_file()

"""Every cause the analyzer can name is explained: what it means, how it shows, how to fix it."""

from __future__ import annotations

import pytest
from wsanalyze.causes import KNOWN_CAUSES, explain, hint_for
from wstrace.conventions import CAUSES


@pytest.mark.parametrize("cause", CAUSES)
def test_every_contract_cause_is_explained_with_a_fix_hint(cause):
    info = explain(cause)

    assert info.cause == cause
    assert info.meaning.strip() and info.signals.strip() and info.fix.strip()
    assert hint_for(cause) == info.fix


def test_an_explanation_as_json_has_the_cause_and_its_three_texts():
    info = explain("consumer_gone")

    assert info.as_dict() == {
        "cause": "consumer_gone",
        "meaning": info.meaning,
        "signals": info.signals,
        "fix": info.fix,
    }


def test_a_cause_nobody_defined_has_no_explanation_and_gets_the_unknown_hint():
    with pytest.raises(KeyError):
        explain("gremlins")

    assert hint_for("gremlins") == explain("unknown").fix


def test_known_causes_start_with_the_contract_ones_in_contract_order_without_repeats():
    assert KNOWN_CAUSES[: len(CAUSES)] == CAUSES
    assert len(set(KNOWN_CAUSES)) == len(KNOWN_CAUSES)
    for cause in KNOWN_CAUSES:  # the analyzer's own causes are explained too
        assert explain(cause).fix

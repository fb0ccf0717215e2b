"""A healthy conversation on the real stack: every chunk, in order, then done."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = pytest.mark.stack


def test_each_message_gets_all_chunks_in_order_then_done(any_layer_stack):
    transcript = any_layer_stack.talk(["What is the refund policy?", "And for annual plans?"])

    assert transcript.connected and transcript.all_done, any_layer_stack.log_tails()
    for message_id in transcript.message_ids:
        assert transcript.acks[message_id]["task_id"]
        assert transcript.seqs(message_id) == [1, 2, 3, 4, 5]
        assert transcript.done_for(message_id)["chunks"] == 5
        assert transcript.text(message_id).startswith("Let me look into that.")
    assert transcript.unexpected == []
    assert (transcript.closed_by, transcript.close_code) == ("client", 1000)


def test_worker_reports_the_task_succeeded(core_stack):
    transcript = core_stack.talk(["hello"])
    message_id = transcript.message_ids[0]

    result = core_stack.task_result(transcript.task_id(message_id), timeout=5)

    assert result is not None and result["status"] == "SUCCESS"
    assert result["result"]["published"] == len(transcript.chunks[message_id]) == 5


def test_bearer_header_authenticates_like_the_query_token(core_stack):
    transcript = core_stack.talk(["hello"], bearer=True)

    assert transcript.all_done, core_stack.log_tails()


def test_allowed_browser_origin_is_served(core_stack):
    transcript = core_stack.talk(["hello"], origin="http://localhost:8000")

    assert transcript.all_done, core_stack.log_tails()


def test_http_health_endpoint_answers(core_stack):
    with urllib.request.urlopen(f"{core_stack.web_url}/healthz", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok"}

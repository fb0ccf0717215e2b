"""Faults of the connection itself: auth, origin, rate limit, invalid frames."""

from __future__ import annotations

import pytest

from .chat import new_conversation

pytestmark = pytest.mark.stack

SETTINGS_RATE_LIMIT = 10  # CHAT_RATE_LIMIT default


@pytest.mark.parametrize("token_kind", ["none", "wrong_secret", "expired", "garbage"])
def test_bad_token_is_accepted_then_closed_4001(core_stack, token_kind):
    transcript = core_stack.talk(["hello"], token=token_kind, timeout=5)

    assert transcript.connected
    assert (transcript.closed_by, transcript.close_code) == ("server", 4001)
    assert transcript.frames == []


def test_disallowed_origin_is_refused_with_http_403(core_stack):
    conversation_id = new_conversation()
    transcript = core_stack.talk(
        ["hello"], conversation_id=conversation_id, origin="https://evil.example"
    )

    assert not transcript.connected
    assert transcript.handshake_status == 403
    assert f"WSCONNECT /ws/chat/{conversation_id}/" not in core_stack.log_text("web")


def test_burst_above_rate_limit_closes_4004(core_stack):
    transcript = core_stack.talk(["hi"] * (SETTINGS_RATE_LIMIT + 1), timeout=5)

    assert (transcript.closed_by, transcript.close_code) == ("server", 4004)
    assert len(transcript.acks) == SETTINGS_RATE_LIMIT


@pytest.mark.parametrize(
    "frame",
    ["this is not json", '{"type": "message", "id": "m1"}', '["a", "list"]'],
    ids=["not-json", "no-content", "not-an-object"],
)
def test_invalid_frame_closes_4005(core_stack, frame):
    transcript = core_stack.talk([], raw_frames=[frame], timeout=5)

    assert transcript.connected
    assert (transcript.closed_by, transcript.close_code) == ("server", 4005)
    assert transcript.frames == []

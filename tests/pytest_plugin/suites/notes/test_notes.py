"""A user's tests of the notes project with the wstrace fixture (in-memory layer, Celery eager)."""

from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from notes.asgi import application
from wsanalyze.analysis import conversation_report


async def summarize(conversation_id: str, message_id: str, text: str) -> list[dict]:
    """Send one note and collect the frames that come back until ``done`` or a quiet half second."""
    communicator = WebsocketCommunicator(application, f"/ws/notes/{conversation_id}/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"id": message_id, "text": text})
    frames: list[dict] = []
    while not frames or frames[-1]["type"] != "done":
        if await communicator.receive_nothing(timeout=0.5):
            break
        frames.append(await communicator.receive_json_from())
    await communicator.disconnect()
    return frames


@pytest.mark.asyncio
async def test_a_note_is_streamed_back(wstrace, tmp_path):
    frames = await summarize("n1", "m1", "three short words")

    assert [f["type"] for f in frames] == ["chunk", "chunk", "chunk", "done"]
    await wstrace.aassert_delivered()
    report = wstrace.conversation("n1")
    (message,) = report.messages
    assert (message.outcome, message.chunks.published, message.chunks.sent) == ("delivered", 4, 4)
    assert [c.conversation_id for c in wstrace.conversations()] == ["n1"]
    assert wstrace.lost().lost == 0
    # nothing was written; saved on request, the CLI's reading of the files says the same
    assert not list(Path.cwd().rglob("*.jsonl"))
    saved = wstrace.save(tmp_path / "spans")
    from_files = conversation_report("n1", traces=str(saved))
    assert from_files.verdict == report.verdict and from_files.messages == report.messages


@pytest.mark.asyncio
async def test_a_crashing_summarizer_is_reported_at_the_task(wstrace):
    frames = await summarize("n2", "m2", "fault:crash please")

    assert frames == []
    with pytest.raises(AssertionError) as failed:
        await wstrace.aassert_delivered("n2")
    text = str(failed.value)
    assert "message m2: LOST  hop=task  cause=task_failed" in text
    assert "RuntimeError" in text  # RECORD_BODIES off: the type and place, not the message
    assert "fix:" in text


@pytest.mark.asyncio
async def test_an_answer_streamed_to_an_empty_group_is_consumer_gone(wstrace):
    await summarize("n3", "m3", "fault:leave_group hello")

    with pytest.raises(AssertionError) as failed:
        wstrace.assert_delivered()
    assert "cause=consumer_gone" in str(failed.value)
    assert wstrace.lost().lost == 1


def test_a_test_without_websockets_has_no_spans(wstrace):
    assert wstrace.spans == []
    assert wstrace.conversations() == []

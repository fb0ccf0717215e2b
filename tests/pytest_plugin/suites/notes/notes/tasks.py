"""The summarizer: streams a note back word by word to the conversation's group."""

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer


def group_of(conversation_id: str) -> str:
    return f"notes_{conversation_id}"


@shared_task(name="notes.summarize")
def summarize(conversation_id: str, message_id: str, text: str) -> int:
    """Stream ``text`` back word by word, then ``done``; ``fault:...`` words plant faults."""
    if "fault:crash" in text:
        raise RuntimeError("summarizer model unavailable")
    group = group_of(conversation_id)
    group_send = async_to_sync(get_channel_layer().group_send)
    words = text.split()
    for seq, word in enumerate(words, start=1):
        group_send(
            group, {"type": "notes.chunk", "message_id": message_id, "seq": seq, "text": word}
        )
    group_send(group, {"type": "notes.done", "message_id": message_id, "chunks": len(words)})
    return len(words)

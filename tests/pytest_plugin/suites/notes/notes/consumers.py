"""One socket per open note: each frame starts the summarizer, whose chunks come back."""

from asgiref.sync import async_to_sync
from channels.generic.websocket import JsonWebsocketConsumer

from .tasks import group_of, summarize


class NotesConsumer(JsonWebsocketConsumer):
    def connect(self):
        self.group = group_of(self.scope["url_route"]["kwargs"]["conversation_id"])
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()

    def disconnect(self, code):
        async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def receive_json(self, content, **kwargs):
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        if "fault:leave_group" in content["text"]:  # a consumer that left its group too early
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)
        summarize.delay(conversation_id, content["id"], content["text"])

    def notes_chunk(self, event):
        self.send_json({"type": "chunk", "message_id": event["message_id"], "text": event["text"]})

    def notes_done(self, event):
        self.send_json({"type": "done", "message_id": event["message_id"]})

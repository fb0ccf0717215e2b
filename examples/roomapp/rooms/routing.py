"""WebSocket routes: a room per conversation, and a notification socket per user."""

from django.urls import re_path

from .consumers import RoomConsumer, UserConsumer

websocket_urlpatterns = [
    re_path(r"^ws/rooms/(?P<conversation_id>[A-Za-z0-9_-]{1,64})/$", RoomConsumer.as_asgi()),
    re_path(r"^ws/user/(?P<user_id>[A-Za-z0-9_-]{1,64})/$", UserConsumer.as_asgi()),
]

"""The messages API: post a message to a room, edit one (which re-runs its bot).

``POST /api/rooms/<conversation_id>/messages/`` with ``{"id", "text"}`` and
``Authorization: Bearer <jwt>``: echoed to the room with group_send (as the
socket does), participants notified, the mentioned bot started. 201
``{"message_id", "task_id"}``.

``POST /api/messages/<message_id>/edit/`` with ``{"text", "room"}``: re-runs the
bot for that message (``@bot`` unless the text mentions another). 202
``{"message_id", "task_id"}``. Its URL names no conversation: the room is in the body.
"""

from __future__ import annotations

import json
import uuid
from functools import cache

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from .auth import user_from_request
from .bots import (
    TASK_ID_TTL,
    mentioned_bot,
    participants_key,
    room_group,
    start_bot,
    task_key,
    user_group,
)


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _body(request: HttpRequest) -> dict | None:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """401 without a valid token (the same tokens as the sockets)."""
    if not user_from_request(request).is_authenticated:
        return JsonResponse({"error": "not authenticated"}, status=401)
    return None


@require_POST
def post_message(request: HttpRequest, conversation_id: str) -> JsonResponse:
    """Save (echo) a message to a room and start its bot when mentioned."""
    if (refused := _refusal(request)) is not None:
        return refused
    body = _body(request)
    if body is None or not isinstance(body.get("text"), str):
        return JsonResponse({"error": 'expected {"id", "text"}'}, status=400)
    message_id = str(body.get("id") or uuid.uuid4().hex)
    text = body["text"]
    user_id = user_from_request(request).id
    group_send = async_to_sync(get_channel_layer().group_send)
    group_send(
        room_group(conversation_id),
        {"type": "room.message", "message_id": message_id, "user": user_id, "text": text},
    )
    _redis().sadd(participants_key(conversation_id), user_id)
    update = {"type": "conversation.updated", "conversation_id": conversation_id}
    for member in sorted(m.decode() for m in _redis().smembers(participants_key(conversation_id))):
        group_send(user_group(member), {**update, "message_id": message_id})
    task_id = None
    if (bot := mentioned_bot(text)) is not None:
        task_id = start_bot(bot, conversation_id, message_id, text).id
        _redis().set(task_key(message_id), task_id, ex=TASK_ID_TTL)
    return JsonResponse({"message_id": message_id, "task_id": task_id}, status=201)


@require_POST
def edit_message(request: HttpRequest, message_id: str) -> JsonResponse:
    """Edit a message: its bot answers the new text again."""
    if (refused := _refusal(request)) is not None:
        return refused
    body = _body(request)
    if body is None or not isinstance(body.get("text"), str) or not body.get("room"):
        return JsonResponse({"error": 'expected {"text", "room"}'}, status=400)
    text, room = body["text"], str(body["room"])
    task_id = start_bot(mentioned_bot(text) or "bot", room, message_id, text).id
    _redis().set(task_key(message_id), task_id, ex=TASK_ID_TTL)
    return JsonResponse({"message_id": message_id, "task_id": task_id}, status=202)

"""What the room app's clients saw: the protocol the scenarios rely on (no analyzer)."""

from __future__ import annotations

import pytest

from .conftest import RoomRun

pytestmark = pytest.mark.stack


def test_sockets_accept_the_bearer_subprotocol_and_echo_the_clients_own_id(
    room_run: RoomRun,
) -> None:
    played = room_run.played["room_echo"]
    (socket,) = played.sockets
    assert socket.subprotocol == "bearer"
    (echo,) = socket.of("message")
    assert echo["message_id"] == played.ids["message"] == socket.sent[0]["id"]


def test_both_sockets_of_a_user_get_the_message(room_run: RoomRun) -> None:
    played = room_run.played["room_two_sockets"]
    assert [len(s.of("message", played.ids["message"])) for s in played.sockets] == [1, 1]


def test_typing_reaches_the_others_only_and_ping_gets_a_pong(room_run: RoomRun) -> None:
    played = room_run.played["room_typing_ping"]
    alice, bob = played.sockets
    assert alice.of("typing") == [] and len(bob.of("typing", played.ids["typing"])) == 1
    assert len(alice.of("pong", played.ids["ping"])) == 1


def test_stop_answers_stopped_and_the_stream_ends_early(room_run: RoomRun) -> None:
    played = room_run.played["room_stop"]
    (socket,) = played.sockets
    assert len(socket.of("stopped", played.ids["stop"])) == 1
    assert socket.of("done", played.ids["message"]) == []
    assert 2 <= len(socket.of("chunk", played.ids["message"])) < 40


def test_the_sigkilled_stream_stops_after_two_chunks(room_run: RoomRun) -> None:
    played = room_run.played["room_sigkill"]
    (socket,) = played.sockets
    assert [f["seq"] for f in socket.of("chunk", played.ids["message"])] == [1, 2]


def test_redis_going_away_closes_the_socket_1011(room_run: RoomRun) -> None:
    assert room_run.played["room_redis_down"].notes["close_code"] == 1011

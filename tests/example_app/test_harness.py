"""The harness itself: failures to start are loud, and commands are reusable elsewhere."""

from __future__ import annotations

import pytest
from wsanalyze.demo.processes import StackError
from wsanalyze.demo.stack import Stack

pytestmark = pytest.mark.stack


def test_a_process_that_dies_at_start_raises_with_its_log_tail(make_stack):
    with pytest.raises(StackError, match="CHAT_LAYER must be 'core' or 'pubsub'"):
        make_stack(wstrace_enabled=False, env={"CHAT_LAYER": "bogus"})


def test_process_env_gives_each_service_its_own_name_and_overrides(tmp_path, redis_server):
    stack = Stack(
        tmp_path,
        redis_server.url_for(0),
        layer="pubsub",
        env={"CHAT_CHUNKS": "3"},
        worker_env={"CHAT_LAYER_PREFIX": "agents"},
    )

    web, worker = stack.process_env("web"), stack.process_env("worker")

    assert (web["WSTRACE_SERVICE"], worker["WSTRACE_SERVICE"]) == ("web", "worker")
    assert web["CHAT_LAYER"] == worker["CHAT_LAYER"] == "pubsub"
    assert web["CHAT_CHUNKS"] == worker["CHAT_CHUNKS"] == "3"
    assert "CHAT_LAYER_PREFIX" not in web and worker["CHAT_LAYER_PREFIX"] == "agents"
    assert stack.web_command()[-1] == "config.asgi:application"
    assert stack.worker_command()[stack.worker_command().index("-P") + 1] == "prefork"

"""Instrumentors wrap the real library functions once, and put the originals back."""

from __future__ import annotations

import logging

import celery.app.base
import channels.consumer
import channels.layers
import channels.routing
import channels.security.websocket
import channels_redis.core
import channels_redis.pubsub
import pytest
import redis.commands.core
from celery import signals
from wrapt import FunctionWrapper
from wstrace.instrumentors import (
    INSTRUMENTORS,
    CeleryInstrumentor,
    ChannelLayerInstrumentor,
    ChannelsInstrumentor,
    RedisPublishInstrumentor,
    instrument_all,
    uninstrument_all,
)

LAYER_METHODS = ("group_send", "send", "receive", "group_add", "group_discard")
LAYER_CLASSES = (
    channels.layers.InMemoryChannelLayer,
    channels_redis.core.RedisChannelLayer,
    channels_redis.pubsub.RedisPubSubLoopLayer,
)
# (owner, attribute) of every function wstrace replaces, by instrumentor.
TARGETS = {
    ChannelsInstrumentor: [
        (channels.routing.ProtocolTypeRouter, "__call__"),
        (channels.security.websocket.OriginValidator, "valid_origin"),
        (channels.consumer.AsyncConsumer, "__call__"),
        (channels.consumer, "await_many_dispatch"),
    ],
    ChannelLayerInstrumentor: [
        *((klass, method) for klass in LAYER_CLASSES for method in LAYER_METHODS),
        (channels_redis.core.RedisChannelLayer, "_map_channel_keys_to_connection"),
        (channels_redis.core.BoundedQueue, "put_nowait"),
        (redis.commands.core.ScriptCommands, "eval"),
    ],
    RedisPublishInstrumentor: [(redis.commands.core.PubSubCommands, "publish")],
    CeleryInstrumentor: [(celery.app.base.Celery, "send_task")],
}
ALL_TARGETS = [target for targets in TARGETS.values() for target in targets]
CELERY_SIGNALS = (
    signals.before_task_publish,
    signals.after_task_publish,
    signals.task_prerun,
    signals.task_postrun,
    signals.task_failure,
    signals.task_retry,
    signals.worker_ready,
    signals.worker_process_shutdown,
)


def _raw(owner, name):
    """The object stored under ``name`` (not what attribute lookup binds)."""
    return vars(owner)[name]


def _target_id(target) -> str:
    owner, name = target
    return f"{getattr(owner, '__qualname__', owner.__name__)}.{name}"


@pytest.fixture
def originals():
    """Start and end uninstrumented; yield the original functions."""
    uninstrument_all()
    saved = {target: _raw(*target) for target in ALL_TARGETS}
    yield saved
    uninstrument_all()


@pytest.mark.parametrize("target", ALL_TARGETS, ids=_target_id)
def test_instrument_wraps_the_real_function(originals, target):
    instrument_all()

    wrapped = _raw(*target)
    assert wrapped is not originals[target]
    assert isinstance(wrapped, FunctionWrapper)
    assert wrapped.__wrapped__ is originals[target]


@pytest.mark.parametrize("target", ALL_TARGETS, ids=_target_id)
def test_uninstrument_restores_the_original_function(originals, target):
    instrument_all()

    uninstrument_all()

    assert _raw(*target) is originals[target]


@pytest.mark.parametrize("instrumentor", list(TARGETS), ids=lambda k: k.__name__)
def test_instrumenting_twice_warns_and_wraps_only_once(originals, instrumentor, caplog):
    instrumentor().instrument(skip_dep_check=True)
    first = {target: _raw(*target) for target in TARGETS[instrumentor]}
    caplog.set_level(logging.WARNING)

    instrumentor().instrument(skip_dep_check=True)

    assert any("already instrumented" in r.getMessage() for r in caplog.records)
    for target in TARGETS[instrumentor]:
        assert _raw(*target) is first[target]
        assert _raw(*target).__wrapped__ is originals[target]  # not a wrapper of a wrapper


@pytest.mark.parametrize("instrumentor", list(TARGETS), ids=lambda k: k.__name__)
def test_uninstrumenting_twice_is_harmless(originals, instrumentor):
    instrumentor().instrument(skip_dep_check=True)
    instrumentor().uninstrument()

    instrumentor().uninstrument()

    for target in TARGETS[instrumentor]:
        assert _raw(*target) is originals[target]


def test_instrument_all_is_idempotent(originals):
    first = instrument_all()
    wrapped = {target: _raw(*target) for target in ALL_TARGETS}

    second = instrument_all()

    assert first == second == [klass.__name__ for _, klass in INSTRUMENTORS]
    assert {target: _raw(*target) for target in ALL_TARGETS} == wrapped


def test_celery_signal_receivers_are_connected_once_and_disconnected(originals):
    before = [len(signal.receivers) for signal in CELERY_SIGNALS]

    instrument_all()
    instrument_all()
    during = [len(signal.receivers) for signal in CELERY_SIGNALS]
    uninstrument_all()

    assert during == [n + 1 for n in before]
    assert [len(signal.receivers) for signal in CELERY_SIGNALS] == before

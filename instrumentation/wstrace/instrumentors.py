"""One instrumentor per library, in the manner of opentelemetry-python-contrib.

Each is a singleton ``BaseInstrumentor``: ``instrument()`` twice warns and does
nothing, ``uninstrument()`` restores the original functions. A library that is
not installed is skipped (``instrument`` is then a no-op for it).

Usage outside Django (``apps.py`` does this for you)::

    from wstrace.instrumentors import instrument_all
    instrument_all()
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from wstrace import conventions as c

logger = logging.getLogger(__name__)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class ChannelsInstrumentor(BaseInstrumentor):
    """Connect/auth/accept/close/send at the ASGI edge; receive/deliver in consumers."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("channels >= 4.0",)

    def _instrument(self, **kwargs: Any) -> None:
        from wstrace.channels import asgi, consumer

        wrap_function_wrapper("channels.routing", "ProtocolTypeRouter.__call__", asgi.router_call)
        wrap_function_wrapper(
            "channels.security.websocket", "OriginValidator.valid_origin", asgi.origin_valid
        )
        wrap_function_wrapper("channels.consumer", "AsyncConsumer.__call__", consumer.consumer_call)
        wrap_function_wrapper("channels.consumer", "await_many_dispatch", consumer.many_dispatch)

    def _uninstrument(self, **kwargs: Any) -> None:
        import channels.consumer
        import channels.routing
        import channels.security.websocket

        unwrap(channels.routing.ProtocolTypeRouter, "__call__")
        unwrap(channels.security.websocket.OriginValidator, "valid_origin")
        unwrap(channels.consumer.AsyncConsumer, "__call__")
        unwrap(channels.consumer, "await_many_dispatch")


class ChannelLayerInstrumentor(BaseInstrumentor):
    """Publish and membership on the in-memory, Redis and Redis pub/sub layers."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("channels >= 4.0",)

    def _targets(self) -> list[tuple[str, str]]:
        targets = [("channels.layers", "InMemoryChannelLayer")]
        if _installed("channels_redis"):
            targets += [
                ("channels_redis.core", "RedisChannelLayer"),
                ("channels_redis.pubsub", "RedisPubSubLoopLayer"),
            ]
        return targets

    def _instrument(self, **kwargs: Any) -> None:
        from wstrace.channels import layers

        for module, cls in self._targets():
            wrap_function_wrapper(
                module, f"{cls}.group_send", layers.publisher(c.EV_GROUP_SEND, "group")
            )
            wrap_function_wrapper(
                module, f"{cls}.send", layers.publisher(c.EV_CHANNEL_SEND, "channel")
            )
            wrap_function_wrapper(module, f"{cls}.receive", layers.receiver)
            wrap_function_wrapper(
                module, f"{cls}.group_add", layers.membership(c.SPAN_GROUP_ADD, c.EV_GROUP_ADD)
            )
            wrap_function_wrapper(
                module,
                f"{cls}.group_discard",
                layers.membership(c.SPAN_GROUP_DISCARD, c.EV_GROUP_DISCARD),
            )
        if _installed("channels_redis"):
            wrap_function_wrapper(
                "channels_redis.core",
                "RedisChannelLayer._map_channel_keys_to_connection",
                layers.channel_keys_mapped,
            )
            wrap_function_wrapper(
                "channels_redis.core", "BoundedQueue.put_nowait", layers.buffer_put
            )
            # The capacity check of group_send is one EVAL whose result counts the refusals.
            wrap_function_wrapper(
                "redis.commands.core", "ScriptCommands.eval", layers.capacity_script
            )

    def _uninstrument(self, **kwargs: Any) -> None:
        import importlib

        for module, cls in self._targets():
            klass = getattr(importlib.import_module(module), cls)
            for method in ("group_send", "send", "receive", "group_add", "group_discard"):
                unwrap(klass, method)
        if _installed("channels_redis"):
            import channels_redis.core

            unwrap(channels_redis.core.RedisChannelLayer, "_map_channel_keys_to_connection")
            unwrap(channels_redis.core.BoundedQueue, "put_nowait")
            import redis.commands.core

            unwrap(redis.commands.core.ScriptCommands, "eval")


class RedisPublishInstrumentor(BaseInstrumentor):
    """redis-py raw pub/sub (sync and asyncio): ``PUBLISH`` and the messages subscribers read.

    ``publish`` gives the subscriber count it returns; ``PubSub.handle_message``
    (what ``get_message``/``listen`` parse each reply with) the subscriber's
    ``ws.deliver``. channels_redis' pub/sub layer reads through the same PubSub,
    so its receive loop is marked to be left out.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("redis >= 4.2",)

    def _instrument(self, **kwargs: Any) -> None:
        from wstrace import redis_pubsub
        from wstrace.channels import layers

        wrap_function_wrapper("redis.commands.core", "PubSubCommands.publish", layers.redis_publish)
        wrap_function_wrapper("redis.client", "PubSub.handle_message", redis_pubsub.handle_message)
        wrap_function_wrapper(
            "redis.asyncio.client", "PubSub.handle_message", redis_pubsub.handle_message_async
        )
        if _layer_reader_target() is not None:
            wrap_function_wrapper(
                "channels_redis.pubsub",
                "RedisSingleShardConnection._do_receiving",
                redis_pubsub.layer_reader,
            )

    def _uninstrument(self, **kwargs: Any) -> None:
        import redis.asyncio.client
        import redis.client
        import redis.commands.core

        unwrap(redis.commands.core.PubSubCommands, "publish")
        unwrap(redis.client.PubSub, "handle_message")
        unwrap(redis.asyncio.client.PubSub, "handle_message")
        owner = _layer_reader_target()
        if owner is not None:
            unwrap(owner, "_do_receiving")


def _layer_reader_target() -> type | None:
    """channels_redis' pub/sub shard connection, if installed with the receive loop we mark."""
    if not _installed("channels_redis"):
        return None
    import channels_redis.pubsub

    owner = getattr(channels_redis.pubsub, "RedisSingleShardConnection", None)
    return owner if owner is not None and hasattr(owner, "_do_receiving") else None


class CeleryInstrumentor(BaseInstrumentor):
    """Enqueue and task spans, context in task headers, worker queues, prefork flush."""

    # the signal receivers connected by _instrument, disconnected by _uninstrument
    _connections: list[tuple[Any, Any]] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("celery >= 5.0",)

    def _instrument(self, **kwargs: Any) -> None:
        from celery import signals

        from wstrace import celery as hooks
        from wstrace import celery_control as control

        self._tasks = hooks.TaskSpans()
        wrap_function_wrapper("celery.app.base", "Celery.send_task", hooks.send_task)
        wrap_function_wrapper("celery.app.control", "Control.revoke", control.revoke)
        self._connections = [
            (signals.before_task_publish, hooks.before_publish),
            (signals.after_task_publish, hooks.after_publish),
            (signals.task_prerun, self._tasks.prerun),
            (signals.task_postrun, self._tasks.postrun),
            (signals.task_failure, self._tasks.failure),
            (signals.task_retry, self._tasks.retry),
            (signals.worker_ready, control.worker_ready),
            (signals.worker_process_shutdown, control.process_shutdown),
            (signals.task_revoked, self._tasks.revoked),
        ]
        for signal, receiver in self._connections:
            signal.connect(receiver, weak=False)

    def _uninstrument(self, **kwargs: Any) -> None:
        import celery.app.base
        import celery.app.control

        unwrap(celery.app.base.Celery, "send_task")
        unwrap(celery.app.control.Control, "revoke")
        for signal, receiver in self._connections:
            signal.disconnect(receiver)
        self._connections = []


INSTRUMENTORS: tuple[tuple[str, type[BaseInstrumentor]], ...] = (
    ("channels", ChannelsInstrumentor),
    ("channels", ChannelLayerInstrumentor),
    ("redis", RedisPublishInstrumentor),
    ("celery", CeleryInstrumentor),
)


def instrument_all() -> list[str]:
    """Instrument every supported library that is installed; return their names."""
    done = []
    for module, klass in INSTRUMENTORS:
        if not _installed(module):
            continue
        instrumentor = klass()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(skip_dep_check=True)
        done.append(klass.__name__)
    return done


def uninstrument_all() -> None:
    """Undo ``instrument_all``."""
    for module, klass in INSTRUMENTORS:
        if _installed(module):
            klass().uninstrument()

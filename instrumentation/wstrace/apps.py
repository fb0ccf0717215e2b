"""The Django app: ``INSTALLED_APPS += ["wstrace"]`` turns the instrumentation on.

``ready()`` reads ``settings.WSTRACE`` and the environment, sets up the tracer
provider and exporters, and instruments Channels, the channel layers, redis-py,
Celery and Django's HTTP requests (``wstrace.http``; ``HTTP_REQUESTS: False``
turns that part off). Nothing in the user's code changes. A bad setting is reported as
one error line (and by ``manage.py check``) and leaves the app uninstrumented
rather than broken.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.signals import setting_changed

logger = logging.getLogger("wstrace")

_problem: dict[str, str] = {}


class WstraceConfig(AppConfig):
    name = "wstrace"
    verbose_name = "wstrace: WebSocket evidence"

    def ready(self) -> None:
        setup(getattr(settings, "WSTRACE", None))
        setting_changed.connect(_reload_on_change, dispatch_uid="wstrace-settings")


def _reload_on_change(setting: str = "", **_: Any) -> None:
    """``override_settings(WSTRACE=...)`` takes effect on the wrappers (exporters stay)."""
    if setting != "WSTRACE":
        return
    from wstrace import redact, runtime
    from wstrace.config import ConfigError, load_config

    try:
        config = load_config(getattr(settings, "WSTRACE", None))
    except ConfigError as exc:
        logger.error("wstrace: %s; keeping the previous configuration", exc)
        return
    redact.configure(config.redact_params)
    if runtime.installed():
        runtime.activate(config)


def setup(user_settings: Any) -> bool:
    """Configure and instrument from a WSTRACE dict; True when instrumentation is on."""
    from wstrace import provider, redact, runtime
    from wstrace.config import ConfigError, load_config

    try:
        config = load_config(user_settings)
    except ConfigError as exc:
        _problem["config"] = str(exc)
        logger.error("wstrace: %s; instrumentation is off", exc)
        return False
    if not config.enabled:
        return False
    try:
        redact.configure(config.redact_params)
        provider.install(config)
        runtime.activate(config)
        from wstrace.instrumentors import instrument_all
        from wstrace.logging import install_record_factory

        install_record_factory()
        instrument_all()
    except Exception as exc:
        runtime.deactivate()
        logger.error(
            "wstrace: could not start (%s: %s); instrumentation is off", type(exc).__name__, exc
        )
        return False
    # Here, not in instrument_all: the middleware must be listed before Django builds the
    # handler, and a failure costs the HTTP spans only, never the WebSocket evidence.
    from wstrace import http

    runtime.shield("Django HTTP instrumentation", http.instrument, config)
    return True


@checks.register()
def wstrace_settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check`` reports a WSTRACE setting that could not be used."""
    if "config" not in _problem:
        return []
    return [checks.Error(_problem["config"], hint="Fix settings.WSTRACE", id="wstrace.E001")]

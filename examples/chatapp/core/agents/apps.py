import logging
from urllib.parse import urlsplit

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def layer_description(config: dict) -> str:
    """``<backend> <host:port/db> prefix=<prefix>`` of a CHANNEL_LAYERS entry, no credentials.

    Web and worker must publish and subscribe on the same layer; logging what each process
    loaded makes a mismatch visible in their logs.
    """
    options = config.get("CONFIG", {})
    hosts = []
    for host in options.get("hosts", []):
        address = host.get("address") if isinstance(host, dict) else host
        parts = urlsplit(str(address))
        hosts.append(f"{parts.hostname}:{parts.port}{parts.path or '/0'}")
    prefix = options.get("prefix", "asgi")
    return f"{config.get('BACKEND')} {','.join(hosts)} prefix={prefix}"


class AgentsConfig(AppConfig):
    name = "core.agents"
    label = "agents"

    def ready(self) -> None:
        from config.logfmt import log_event
        from django.conf import settings

        layer = settings.CHANNEL_LAYERS.get("default")
        if layer:
            log_event(logger, "channel layer loaded", layer=layer_description(layer))

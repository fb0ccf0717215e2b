"""ASGI entry point: HTTP to Django, WebSockets through subprotocol-token auth."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from rooms.auth import SubprotocolTokenMiddleware  # noqa: E402
from rooms.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SubprotocolTokenMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

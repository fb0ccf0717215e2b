"""ASGI entry point: HTTP to Django, WebSockets through origin check and JWT auth."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from core.agents.middleware import BrowserOriginValidator, TokenAuthMiddleware  # noqa: E402
from core.agents.routing import websocket_urlpatterns  # noqa: E402
from django.conf import settings  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": BrowserOriginValidator(
            TokenAuthMiddleware(URLRouter(websocket_urlpatterns)),
            settings.CHAT_ALLOWED_ORIGINS,
        ),
    }
)

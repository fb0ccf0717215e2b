"""DOCTOR_ASGI picks the shape: good, auth_inside (auth wraps a route), no_origin, not_router."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from proj.consumers import ChatConsumer  # noqa: E402

PATTERN = r"^ws/chat/(?P<conversation_id>[^/]+)/$"
shape = os.environ.get("DOCTOR_ASGI", "good")

if shape == "not_router":
    application = django_asgi_app
elif shape == "auth_inside":
    application = ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(
                URLRouter([re_path(PATTERN, AuthMiddlewareStack(ChatConsumer.as_asgi()))])
            ),
        }
    )
elif shape == "no_origin":
    application = ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AuthMiddlewareStack(URLRouter([re_path(PATTERN, ChatConsumer.as_asgi())])),
        }
    )
else:
    application = ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter([re_path(PATTERN, ChatConsumer.as_asgi())]))
            ),
        }
    )

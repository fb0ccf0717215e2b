"""DOCTOR_ASGI picks the shape.

good          AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter))
auth_inside   the auth middleware wraps a route, not the router
no_origin     AuthMiddlewareStack(URLRouter): session cookies, no origin check
not_router    no ProtocolTypeRouter at all
token_query / token_header / token_subprotocol   a token middleware, no origin check
cookie_jwt    a JWT read from a cookie, no origin check
broken        the module raises on import
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from proj import cookie_auth, token_auth  # noqa: E402
from proj.consumers import ChatConsumer  # noqa: E402

PATTERN = r"^ws/chat/(?P<conversation_id>[^/]+)/$"
shape = os.environ.get("DOCTOR_ASGI", "good")
if shape == "broken":
    raise RuntimeError("DOCTOR_ASGI=broken: this asgi module cannot be imported")

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
elif shape.startswith("token_") or shape == "cookie_jwt":
    middleware = {
        "token_query": token_auth.QueryTokenAuthMiddleware,
        "token_header": token_auth.HeaderTokenAuthMiddleware,
        "token_subprotocol": token_auth.SubprotocolTokenAuthMiddleware,
        "cookie_jwt": cookie_auth.JWTCookieAuthMiddleware,
    }[shape]
    application = ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": middleware(URLRouter([re_path(PATTERN, ChatConsumer.as_asgi())])),
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

"""HTTP routes: a health check and the messages API (posting and editing)."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from rooms import views


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process serves requests."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("healthz", healthz),
    path("api/rooms/<str:conversation_id>/messages/", views.post_message),
    path("api/messages/<str:message_id>/edit/", views.edit_message),
]

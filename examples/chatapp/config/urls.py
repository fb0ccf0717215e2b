"""HTTP routes: a health check for load balancers and compose."""

from django.http import HttpRequest, JsonResponse
from django.urls import path


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process serves requests."""
    return JsonResponse({"status": "ok"})


urlpatterns = [path("healthz", healthz)]

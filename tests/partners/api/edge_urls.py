"""A URLconf with a view that fails, to see what a server error under /api/ answers."""

from django.urls import include, path


def crash(request):
    raise RuntimeError("SECRET details a client must never see")


urlpatterns = [
    path("api/v1/crash", crash),
    path("", include("accessctl.urls")),
]

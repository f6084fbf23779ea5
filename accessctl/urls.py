from csp.decorators import csp_exempt
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accessctl.health import healthz, readyz
from accessctl.metrics import metrics_view
from accessctl.signing.views import JwksView

# The domain's routes are included by module name, as INSTALLED_APPS names its app: the
# platform imports no domain code (.importlinter).

handler404 = "accessctl.notfound.not_found"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("partners.api.urls")),
    # The Hugging Face Hub-compatible download endpoint (docs/hub.md).
    path("", include("partners.api.hub_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The documentation pages start their viewers with an inline script: no CSP there.
    path(
        "api/docs/",
        csp_exempt()(SpectacularSwaggerView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        csp_exempt()(SpectacularRedocView.as_view(url_name="schema")),
        name="api-redoc",
    ),
    path("", include("partners.urls")),
    path(".well-known/jwks.json", JwksView.as_view(), name="jwks"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]

"""The domain's routes outside the API (``partners.api.urls``), included at the root."""

from django.urls import path

from partners.claim import claim_view

urlpatterns = [
    path("tokens/claim", claim_view, name="token-claim"),
]

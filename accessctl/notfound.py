"""A plain 404, whatever answered it: no path ever shows Django's DEBUG technical 404
page (it lists every URL pattern of the site and names the view that raised).

``NotFoundMiddleware`` answers ``not_found``'s page for an unmatched path and for an
``Http404`` a view raised, with DEBUG on as off (``handler404`` is the same page). Under
the API the outermost ``ApiProblemMiddleware`` turns it into problem+json, as every API
error."""

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponseBase, HttpResponseNotFound

__all__ = ["NotFoundMiddleware", "not_found"]

PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Not found</title>'
    "</head><body><h1>Not found</h1><p>There is no page at this address.</p>"
    '<p><a href="/">Home</a></p></body></html>\n'
)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponseNotFound:
    """``handler404``: a small HTML page, naming nothing of the site's routes."""
    return HttpResponseNotFound(PAGE, content_type="text/html; charset=utf-8")


class NotFoundMiddleware:
    """With DEBUG on, Django answers an unmatched path and a view's ``Http404`` with its
    technical page: this answers ``not_found`` instead (an unmatched path is an HTML 404
    with no ``resolver_match``; a view's ``Http404`` reaches ``process_exception``). Other
    404s (a problem+json one, the API's) pass."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and getattr(request, "resolver_match", None) is None
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return not_found(request)
        return response

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        if isinstance(exception, Http404):
            return not_found(request, exception)
        return None

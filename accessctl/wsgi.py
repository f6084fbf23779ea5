"""The WSGI application, behind a filter that blanks secrets from the request's URL.

gunicorn writes its access log line from the same ``environ`` dict it handed the
application, after the response: blanking ``RAW_URI`` and ``QUERY_STRING`` here keeps a
secret a client put in the URL (``?grant_token=``, refused by the API) out of that log.
"""

import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

__all__ = ["application", "redact_url"]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accessctl.settings")

# Query parameters that carry a secret: the value is replaced, the name kept (so the API
# can still refuse the request with ``grant_token_in_query``).
_SECRET = re.compile(r"(?i)((?:^|[?&;])(?:grant_token|access_token|token)=)[^&;#\s]*")


def redact_url(text: str) -> str:
    return _SECRET.sub(r"\1REDACTED", text)


def redacting(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def filtered(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        for key in ("RAW_URI", "REQUEST_URI", "QUERY_STRING"):
            if key in environ and "=" in environ[key]:
                environ[key] = redact_url(environ[key])
        return app(environ, start_response)

    return filtered


application = redacting(get_wsgi_application())

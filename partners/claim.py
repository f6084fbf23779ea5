"""The page where an invited partner member collects their API token.

The emailed link carries the one-time claim code in the URL *fragment*
(``/tokens/claim#<code>``), which browsers never send to a server, so the code reaches
no access log, proxy log or ``Referer`` header. A small script of this origin
(``static/partners/claim.js``; the CSP allows nothing else) posts it from the page and
drops it from the address bar; without scripts, the member pastes the code into the
form. The response that shows the secret is never cached.

The page sends no ``Referer`` (``<meta name="referrer" content="no-referrer">``), so
Chromium posts the form with ``Origin: null``, which Django's CSRF check refuses. The
view is CSRF-exempt on purpose: CSRF protects a request that rides on the browser's
ambient authority (a session cookie), and this one has none. The claim code in the form
is the whole authority, and a forged cross-site post could only carry a code its author
already holds (which they could post themselves), showing the secret to nobody but the
browser that posts it.
"""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from partners import actions, tokens
from partners.errors import ActionError
from partners.refusals import settle

__all__ = ["claim_view"]


class ClaimForm(forms.Form):
    code = forms.CharField(
        label="Code from the email",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 50}),
    )


@csrf_exempt  # no ambient authority to protect: the code is the credential (see above)
@require_http_methods(["GET", "POST"])
def claim_view(request: HttpRequest) -> HttpResponse:
    form = ClaimForm(request.POST if request.method == "POST" else None)
    error: ActionError | None = None
    status = 200
    if request.method == "POST" and not form.is_valid():
        # A code the form refuses (empty, over-long, a NUL) is no invitation's code: the
        # action refuses it as it refuses any unknown one (``invitation_invalid``), so every
        # refused submission leaves its one ``token.refused`` event. The event never holds
        # the code; the form's own message is shown.
        try:
            actions.claim_token(code=request.POST.get("code", "")[:1000])
        except ActionError as exc:
            settle(exc)
            status = 400
    if form.is_valid():
        try:
            token, secret = actions.claim_token(code=form.cleaned_data["code"])
        except ActionError as exc:
            settle(exc)
            error, status = exc, 400
        else:
            response = TemplateResponse(
                request,
                "tokens/claimed.html",
                {"token": token, "shown": tokens.described(token), "secret": secret},
            )
            response["Cache-Control"] = "no-store"
            return response
    response = TemplateResponse(
        request, "tokens/claim.html", {"form": form, "error": error}, status=status
    )
    response["Cache-Control"] = "no-store"
    return response

"""Who may use a served app: the holder of its token, as in JupyterLab.

    TokenAuth(token, port)    # passed to the Bokeh server as its auth_provider

A request carries the token as ``?token=`` in its URL (the URL the server prints), which also sets a
cookie, so that the page's later requests, its websocket and its links to ``/files`` need nothing more;
or it carries that cookie. Any other request is refused with 403: pages, ``/files`` and the websocket
handshake alike (Panel's handlers ask the provider on every route they serve; the package's own
JavaScript and CSS stay public). There is no login page: the printed URL is the way in.
"""
from __future__ import annotations

import hmac

from bokeh.server.auth_provider import AuthProvider
from tornado.web import HTTPError, RequestHandler

USER = "workbench"
REFUSED = "Forbidden: open the URL with ?token= that the server printed"


class TokenAuth(AuthProvider):
    """Lets in requests that carry ``token`` (compared in constant time), as ``?token=`` or as the cookie the
    first such request set; the cookie is named after ``port``, so that two apps on one host keep theirs."""

    def __init__(self, token: str, port: int):
        if not token:
            raise ValueError("TokenAuth needs a non-empty token")
        self.token = token
        self.cookie = f"workbench-token-{port}"
        super().__init__()

    @property
    def get_user(self):
        return self.user

    @property
    def get_login_url(self):
        return self.refuse

    def user(self, handler: RequestHandler) -> str | None:
        """:data:`USER` when ``handler``'s request carries the token (a ``?token=`` sets the cookie), else None."""
        given = handler.get_query_argument("token", None)
        if given is not None and self.matches(given):
            handler.set_cookie(self.cookie, self.token, httponly=True, samesite="Lax")
            return USER
        cookie = handler.get_cookie(self.cookie)
        return USER if cookie is not None and self.matches(cookie) else None

    def matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    def refuse(self, handler: RequestHandler) -> str:
        """Where Tornado would redirect a request without the token to log in: nowhere, it is refused (403)."""
        raise HTTPError(403, f"{handler.request.path}: no valid token", reason=REFUSED)

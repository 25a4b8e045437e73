"""Who may open the console: one random token per server, moved from the URL into a cookie.

The printed URL carries the token (as Jupyter's does) so it can be pasted; the first request
with it sets an HttpOnly, SameSite=Strict cookie and is redirected to the clean URL, so the token
leaves the address bar and the history. Every later request — page, assets, websocket — must
carry the cookie. The websocket also checks its Origin against the Host it was sent to: cookies
go with cross-site websocket handshakes, so without that check any page the user visits could
drive their containers.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Query parameter of the printed URL.
TOKEN_PARAM = "token"


def new_token() -> str:
    """32 random bytes, URL-safe: guessing is out of reach, so no rate limit is needed."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: 401 (no credential at all) or 403 (a wrong one)."""

    status: int
    reason: str


@dataclass(frozen=True)
class Gate:
    """The token and the cookie that stands for it."""

    token: str
    cookie_name: str
    secure: bool = False

    def token_matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self.token.encode())

    def check_token(self, offered: str) -> Refusal | None:
        if self.token_matches(offered):
            return None
        return Refusal(403, "this token is not the one `gpuconsole serve` printed")

    def check_cookie(self, cookies: dict[str, str]) -> Refusal | None:
        offered = cookies.get(self.cookie_name)
        if offered is None:
            return Refusal(401, "open the URL with the token that `gpuconsole serve` printed")
        if not self.token_matches(offered):
            return Refusal(403, "this browser's token is from another server; open the new URL")
        return None


def check_origin(origin: str | None, host: str | None, scheme: str) -> Refusal | None:
    """A websocket may only come from a page this server served (same scheme, host and port).

    A missing Origin is refused too: every browser sends one with a websocket handshake, and
    nothing but a browser has a reason to hold the cookie."""
    if not origin or not host:
        return Refusal(403, "a websocket without an Origin is refused")
    parts = urlsplit(origin)
    if parts.scheme != scheme or parts.netloc.lower() != host.lower():
        return Refusal(403, f"websocket from another site ({origin}) refused")
    return None

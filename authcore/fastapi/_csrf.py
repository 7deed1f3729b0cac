"""The CSRF check: does a browser request come from the app's own (or a trusted) origin?"""

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import Request

from authcore.fastapi._http import csrf_refused

__all__ = ["UNSAFE_METHODS", "OriginCheck", "normalize_origin"]

#: The methods whose cookie-authenticated requests must pass the check.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_SITE_SIGNALS = frozenset({"same-origin", "none"})


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case; ``ValueError`` for anything else."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
        raise ValueError(f"trusted origin {origin!r} must look like https://example.com[:port]")
    return f"{parts.scheme}://{parts.netloc}".lower()


class OriginCheck:
    """Whether a browser sent a request from this app's own or a trusted origin.

    Browsers say where a request comes from in ``Sec-Fetch-Site`` and
    ``Origin``: ``same-origin``/``none``, an ``Origin`` whose host is the
    request's ``Host``, or an origin in *trusted_origins* passes; anything
    else fails. A request with neither header is not from a browser and
    passes.

    Args:
        trusted_origins: Other origins (``https://app.example.com``) to accept.

    Raises:
        TypeError: *trusted_origins* is one ``str``.
        ValueError: an origin is not ``scheme://host[:port]``.
    """

    def __init__(self, trusted_origins: Iterable[str] = ()) -> None:
        if isinstance(trusted_origins, str):
            raise TypeError("trusted_origins must be a sequence of origins, not one str")
        self.trusted = frozenset(normalize_origin(o) for o in trusted_origins)

    def allowed(self, request: Request) -> bool:
        """Whether *request* passes (see the class docstring)."""
        site = request.headers.get("sec-fetch-site")
        if site in SAME_SITE_SIGNALS:
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return site is None  # neither header: not a browser
        if origin.lower().rstrip("/") in self.trusted:
            return True
        host = request.headers.get("host")
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:  # e.g. "http://[::1": no origin a browser would send
            return False
        return site is None and host is not None and netloc == host.lower()

    def check(self, request: Request) -> None:
        """Raise the 403 of the CSRF check unless :meth:`allowed`."""
        if not self.allowed(request):
            raise csrf_refused()

"""The security headers of an HTML page the service serves (the API documentation): a Content-Security-
Policy that allows this origin's scripts, styles and requests only (and the page's own inline scripts, by
their hash), forbids framing (``frame-ancestors 'none'``), plus ``X-Content-Type-Options: nosniff``."""

from __future__ import annotations

import base64
import hashlib
import re

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def page_headers(html: bytes) -> dict[str, str]:
    """The headers for the page ``html``; its inline ``<script>`` blocks are allowed by their sha256."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    policy = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

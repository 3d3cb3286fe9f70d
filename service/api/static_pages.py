"""A page made of static files shipped in the package (no build step, no CDN), served under one
Content-Security-Policy: scripts, styles and requests from this origin only, no inline script, no
third-party origin, no framing. The inspector and the labelling page are two such pages."""

from __future__ import annotations

from importlib import resources

from starlette.responses import Response

from service.errors import NotFound

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


class StaticPage:
    """The files of ``service/api/static/<folder>``: ``index.html`` at the page's path, the rest below."""

    def __init__(self, folder: str, assets: tuple[str, ...], what: str) -> None:
        self.folder, self.assets, self.what = folder, frozenset(assets), what

    def index(self) -> Response:
        return self._file("index.html")

    def asset(self, name: str) -> Response:
        if name not in self.assets:
            raise NotFound(f"no file {name[:80]!r} in {self.what}")
        return self._file(name)

    def _file(self, name: str) -> Response:
        folder = resources.files("service.api").joinpath("static").joinpath(self.folder)
        media_type = _MEDIA_TYPES[name[name.rindex(".") :]]
        return Response(folder.joinpath(name).read_bytes(), media_type=media_type, headers=HEADERS)

"""The JSON response class of the service: orjson, numpy arrays serialised natively.

FastAPI's own ``ORJSONResponse`` is deprecated in the FastAPI versions we support; this one is five lines.
Routes return plain data (numpy arrays included) wrapped in it, so large float payloads (hidden states,
vectors) never become one Python float object per number.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=OPTIONS)

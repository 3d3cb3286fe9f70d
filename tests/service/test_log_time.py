"""Log lines carry ISO 8601 times with milliseconds and the UTC offset, in text and in JSON."""

from __future__ import annotations

import logging
import logging.config
import re
from datetime import datetime

import orjson
import pytest

from service.observability.logs import logging_config

ISO_8601_MS_OFFSET = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_times_are_iso_8601_with_milliseconds_and_offset(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = logging_config("info", log_format)
    config["handlers"]["default"]["stream"] = "ext://sys.stdout"
    logging.config.dictConfig(config)
    try:
        logging.getLogger("service.test").info("hello")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        logging.getLogger().handlers.clear()

    line = capsys.readouterr().out.strip().splitlines()[-1]
    stamp = orjson.loads(line)["time"] if log_format == "json" else line.split(" ")[0]
    assert re.fullmatch(ISO_8601_MS_OFFSET, stamp), line
    assert abs((datetime.now().astimezone() - datetime.fromisoformat(stamp)).total_seconds()) < 60

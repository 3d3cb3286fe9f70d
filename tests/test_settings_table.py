"""docs/settings.md's table is the one ``service.settings_doc`` renders from ``Settings``."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import settings_doc
from service.settings import ENV_PREFIX, Settings

STALE = "docs/settings.md's settings table differs from service/settings.py: run `make settings-docs`"


def test_the_committed_settings_table_is_the_generated_one() -> None:
    committed = settings_doc.DOCUMENT.read_text(encoding="utf-8")

    assert settings_doc.with_table(committed) == committed, STALE


def test_every_field_has_a_row_with_its_variable_flag_default_and_description() -> None:
    rows = settings_doc.settings_table().splitlines()[2:]

    assert len(rows) == len(Settings.model_fields)
    for row, (name, field) in zip(rows, Settings.model_fields.items(), strict=True):
        assert row.startswith(f"| `{ENV_PREFIX}{name.upper()}` | `--{name.replace('_', '-')}` |")
        assert field.description
        shown = field.description.replace("<", "&lt;").replace(">", "&gt;")
        assert row.endswith(f" | {shown} |")
    by_variable = {row.split(" | ")[0].strip("| `"): row.split(" | ") for row in rows}
    assert by_variable["LSTM_SERVICE_PORT"][2:4] == ["integer 1–65535", "`8000`"]
    assert by_variable["LSTM_SERVICE_MODEL_STORE"][3] == "`<repo>/model_store`"  # not this machine's path
    assert by_variable["LSTM_SERVICE_API_KEY"][2:4] == ["secret", "unset"]
    assert by_variable["LSTM_SERVICE_READINESS"][2] == "`all` \\| `any` \\| `default`"
    assert "Bearer &lt;key&gt;" in by_variable["LSTM_SERVICE_API_KEY"][4]  # GitHub would drop <key>


def test_a_stale_table_is_rewritten_and_the_check_names_the_make_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "settings.md"
    stale_row = "| `LSTM_SERVICE_PORT` | `--port` | integer | `9000` | old |"
    document.write_text(f"# Settings\n\n{settings_doc.START}\n{stale_row}\n{settings_doc.END}\n\nAfter.\n")

    assert settings_doc.main([str(document), "--check"]) == 1
    assert "run `make settings-docs`" in capsys.readouterr().err
    assert settings_doc.main([str(document)]) == 0
    rewritten = document.read_text()
    assert stale_row not in rewritten and settings_doc.settings_table() in rewritten
    assert rewritten.startswith("# Settings\n\n") and rewritten.endswith("\n\nAfter.\n")
    assert settings_doc.main([str(document), "--check"]) == 0


def test_a_document_without_the_markers_is_refused_with_the_fix(tmp_path: Path) -> None:
    document = tmp_path / "settings.md"
    document.write_text(f"# Settings\n\n{settings_doc.START}\n| a table |\n")  # the end marker lost

    with pytest.raises(ValueError, match="lacks the marker lines .* put them back"):
        settings_doc.main([str(document)])
    assert document.read_text().endswith("| a table |\n")  # left as it was

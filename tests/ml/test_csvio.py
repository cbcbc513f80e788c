"""Reading user CSVs: BOM, header matching, malformed rows reported by line, empty files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.csvio import LINE, parse_csv_text, read_csv_rows, resolve_columns
from ml.errors import InputError


def test_input_error_message_names_line_field_and_allowed_values() -> None:
    err = InputError("unknown value 'Z'", field="warehouse_block", allowed=["A", "B"], row=7)
    assert str(err) == "line 7: warehouse_block: unknown value 'Z' (allowed: A, B)"
    assert isinstance(err, ValueError)
    assert err.to_dict() == {"row": 7, "field": "warehouse_block", "allowed": ["A", "B"], "message": str(err)}


def test_bom_blank_lines_and_short_rows_are_handled_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("\ufeffa,b\n1,2\n\n3\n4,5\n".encode())
    rows = read_csv_rows(path)
    assert rows.header == ["a", "b"]  # the BOM is not part of the first column name
    assert rows.frame["a"].tolist() == ["1", "4"]
    assert rows.frame[LINE].tolist() == [2, 5]
    assert [(e.row, e.field) for e in rows.errors] == [(4, "row")]
    assert "expected 2 fields, found 1" in str(rows.errors[0])


@pytest.mark.parametrize("text", ["", "   \n\n", "\ufeff"])
def test_empty_input_is_a_clear_error(text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        parse_csv_text(text, source="upload.csv")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_csv_rows(tmp_path / "nope.csv")


def test_duplicate_header_is_rejected() -> None:
    with pytest.raises(InputError, match="duplicate column"):
        parse_csv_text("Gender,gender\nF,M\n")


def test_columns_match_case_insensitively_and_report_accepted_names() -> None:
    aliases = {"cost_of_product": ("Cost_of_the_Product", "Cost_of_the_product")}
    assert resolve_columns(["COST_OF_THE_PRODUCT"], aliases, required=["cost_of_product"]) == {
        "cost_of_product": "COST_OF_THE_PRODUCT"
    }
    with pytest.raises(InputError) as info:
        resolve_columns(["price"], aliases, required=["cost_of_product"])
    assert info.value.field == "cost_of_product"
    assert "Cost_of_the_Product" in str(info.value)

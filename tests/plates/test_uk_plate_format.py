"""UK plate formats: normal form, format names, and look-alike characters resolved by
their position in the format (a letter where the format wants a letter, a digit where it
wants a digit)."""

from __future__ import annotations

import pytest

from agent.plates.uk_plate_format import display, interpret, normalise, plate_format


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("AB12 CDE", "current"),
        ("ab12-cde", "current"),
        ("M123 ABC", "prefix"),
        ("ABC 123M", "suffix"),
        ("A1", "dateless"),
        ("1234 AB", "dateless"),
        ("AB12 CD", None),
        ("AB12 CD€", None),
        ("", None),
    ],
)
def test_formats(text: str, fmt: str | None) -> None:
    assert plate_format(text) == fmt


def test_normal_and_display_forms() -> None:
    assert normalise(" ab 12.cde ") == "AB12CDE"
    assert display("AB12CDE") == "AB12 CDE"
    assert display("M123ABC") == "M123 ABC"


@pytest.mark.parametrize(
    ("read", "plate"),
    [
        # O/0, I/1, S/5, B/8 read in the wrong class are turned by position.
        ("AB1ZCDE", "AB12CDE"),  # Z→2 where the age digits are
        ("8B12C0E", "BB12COE"),  # 8→B in the area code, 0→O in the random letters
        ("AB5ICDE", "AB51CDE"),  # I→1 in the age digits
        ("SB12CDE", "SB12CDE"),  # a right letter is left alone
    ],
)
def test_look_alikes_are_resolved_by_position(read: str, plate: str) -> None:
    best = interpret(list(read))[0]
    assert best.plate == plate and best.format == "current"
    assert best.display == display(plate)


def test_a_resolved_character_costs_confidence() -> None:
    clean = interpret(list("AB12CDE"))[0]
    turned = interpret(list("AB1ZCDE"))[0]
    assert clean.char_confidence == 1.0
    assert turned.char_confidence < clean.char_confidence


def test_a_read_of_no_plate_length_has_no_interpretation() -> None:
    assert interpret(list("ABCDEFGHIJ")) == []

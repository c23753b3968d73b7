"""UK number-plate formats, and reading a recognised character string as one of them.

Formats (DVLA; the letters each position may hold):

| format   | layout        | example    | in use                    |
|----------|---------------|------------|---------------------------|
| current  | LL NN LLL     | AB12 CDE   | 2001 onwards (most plates) |
| prefix   | L N[NN] LLL   | A123 BCD   | 1983–2001                 |
| suffix   | LLL N[NN] L   | ABC 123D   | 1963–1983                 |
| dateless | L[LL] N[NNN], N[NNN] L[LL] | AB 1234, 1234 AB | before 1963, cherished, Northern Ireland |

A recogniser confuses some letters and digits that look alike (O/0, I/1, S/5, B/8, Z/2,
G/6 …). The format says which one a position may hold, so ``interpret`` resolves a
confusion by position: an "O" read where the format wants a digit becomes "0", a "5"
where it wants a letter becomes "S". It scores every format the read's length allows
(the recogniser's probability of each resolved character, times the format's prior
share of the plates on the road) and returns them best first; a read that fits no
format is not a plate.

``normalise`` is the one normal form for comparing plates (upper case, no spaces or
separators): the hub hashes it for the hotlist and the camera hashes its reads the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALPHABET = LETTERS + DIGITS

#: Characters a recogniser mistakes for a character of the other class.
TO_DIGIT: Mapping[str, str] = {
    "O": "0",
    "D": "0",
    "Q": "0",
    "U": "0",
    "I": "1",
    "L": "1",
    "J": "1",
    "T": "7",
    "Z": "2",
    "S": "5",
    "B": "8",
    "G": "6",
    "A": "4",
}
TO_LETTER: Mapping[str, str] = {
    "0": "O",
    "1": "I",
    "2": "Z",
    "4": "A",
    "5": "S",
    "6": "G",
    "7": "T",
    "8": "B",
}
#: The least a confusable swap is worth, as a share of the read character's probability,
#: when the recogniser itself gave the swapped character less. Recognisers are
#: over-confident, so a known look-alike is likelier than its softmax says; but a
#: confidently read digit must not be turned into a letter merely because the current
#: format is the common one (its prior is about 35 times a prefix plate's), or every
#: prefix plate ("A123 BCD") would be "corrected" into a current one.
CONFUSION_CREDIT = 0.01
#: Probability floor for a position whose read fits neither directly nor by a known
#: confusion (the best character of the right class, as the recogniser scored it).
_FLOOR = 1e-4

_CURRENT_AREA = "".join(c for c in LETTERS if c not in "IQZ")
_NO_IQ = "".join(c for c in LETTERS if c not in "IQ")
_AGE_LETTER = "".join(c for c in LETTERS if c not in "IOQUZ")
_NONZERO = "123456789"


@dataclass(frozen=True)
class PlateFormat:
    name: str
    positions: tuple[str, ...]  # the characters allowed at each position
    prior: float  # share of plates on the road in this layout (ranking only)
    space_after: int  # where the display form puts its space


def _layout(name: str, groups: Sequence[tuple[str, int]], prior: float) -> list[PlateFormat]:
    """Every concrete length of a layout given as (allowed characters, max count) groups;
    a count written negative is fixed (exactly that many)."""
    variants: list[list[str]] = [[]]
    for allowed, count in groups:
        lengths = [-count] if count < 0 else list(range(1, count + 1))
        grown = []
        for v in variants:
            for n in lengths:
                group = [allowed] * n
                if allowed == DIGITS and count > 0:
                    group[0] = _NONZERO  # 1–3 (or 4) digit groups never start with 0
                grown.append(v + group)
        variants = grown
    fixed = -groups[0][1] if groups[0][1] < 0 else None
    out = []
    for v in variants:
        first = fixed if fixed is not None else _first_group_length(v)
        out.append(PlateFormat(name, tuple(v), prior / len(variants), first))
    return out


def _first_group_length(positions: list[str]) -> int:
    first_is_digit = positions[0] in (DIGITS, _NONZERO)
    n = 0
    for p in positions:
        if (p in (DIGITS, _NONZERO)) != first_is_digit:
            break
        n += 1
    return n


def _build() -> tuple[PlateFormat, ...]:
    formats = [
        PlateFormat(
            "current",
            (_CURRENT_AREA, _NO_IQ, DIGITS, DIGITS, _NO_IQ, _NO_IQ, _NO_IQ),
            0.85,
            4,
        )
    ]
    for f in _layout("prefix", [(_AGE_LETTER, -1), (DIGITS, 3), (_NO_IQ, -3)], 0.07):
        formats.append(PlateFormat(f.name, f.positions, f.prior, len(f.positions) - 3))
    for f in _layout("suffix", [(_NO_IQ, -3), (DIGITS, 3), (_AGE_LETTER, -1)], 0.03):
        formats.append(PlateFormat(f.name, f.positions, f.prior, 3))
    formats += _layout("dateless", [(LETTERS, 3), (DIGITS, 4)], 0.03)
    formats += _layout("dateless", [(DIGITS, 4), (LETTERS, 3)], 0.02)
    # Within a layout, the longer lengths are the common ones; a flat share is enough to
    # rank layouts, the characters decide within one.
    return tuple(f for f in formats if 2 <= len(f.positions) <= 7)


FORMATS: tuple[PlateFormat, ...] = _build()
_BY_LENGTH: dict[int, list[PlateFormat]] = {}
for _f in FORMATS:
    _BY_LENGTH.setdefault(len(_f.positions), []).append(_f)


@dataclass(frozen=True)
class Interpretation:
    """A read taken as one format: the resolved plate, its score and the mean character
    probability (geometric) after resolution."""

    plate: str  # normal form, e.g. "AB12CDE"
    format: str
    score: float
    char_confidence: float

    @property
    def display(self) -> str:
        return display(self.plate)


CharChoices = Mapping[str, float]


def _position(choices: CharChoices, read: str, allowed: str) -> tuple[str, float]:
    """The character at one position and its probability, given what the format allows."""
    if read in allowed:
        return read, choices.get(read, 0.0)
    swap = TO_DIGIT.get(read) if allowed[0] in DIGITS or allowed == _NONZERO else None
    if swap is None and read in DIGITS:
        swap = TO_LETTER.get(read)
    if swap is not None and swap in allowed:
        return swap, max(choices.get(swap, 0.0), choices.get(read, 0.0) * CONFUSION_CREDIT)
    best = max(allowed, key=lambda c: choices.get(c, 0.0))
    return best, max(choices.get(best, 0.0), _FLOOR)


def interpret(
    chars: Sequence[str], choices: Sequence[CharChoices] | None = None
) -> list[Interpretation]:
    """Every format the read fits, best first. ``chars`` are the recogniser's characters;
    ``choices[i]`` its probabilities for position ``i`` (read character → 1.0 if absent)."""
    n = len(chars)
    if choices is None:
        choices = [{c: 1.0} for c in chars]
    out: dict[str, Interpretation] = {}
    for fmt in _BY_LENGTH.get(n, []):
        resolved = []
        log_p = 0.0
        for i, allowed in enumerate(fmt.positions):
            c, p = _position(choices[i], chars[i], allowed)
            resolved.append(c)
            log_p += math.log(max(p, _FLOOR))
        plate = "".join(resolved)
        conf = math.exp(log_p / n)
        score = fmt.prior * math.exp(log_p)
        if plate not in out or out[plate].score < score:
            out[plate] = Interpretation(plate, fmt.name, score, conf)
    return sorted(out.values(), key=lambda i: i.score, reverse=True)


_SEPARATORS = re.compile(r"[\s\-_.·]+")


def normalise(text: str) -> str:
    """Upper case, spaces and separators removed: ``"ab12 cde"`` → ``"AB12CDE"``."""
    return _SEPARATORS.sub("", text).upper()


def plate_format(text: str) -> str | None:
    """The format a written plate is in (exactly, no confusions resolved), or None."""
    plate = normalise(text)
    if not plate or any(c not in ALPHABET for c in plate):
        return None
    for fmt in _BY_LENGTH.get(len(plate), []):
        if all(c in allowed for c, allowed in zip(plate, fmt.positions, strict=True)):
            return fmt.name
    return None


def display(plate: str) -> str:
    """The usual written form: ``"AB12CDE"`` → ``"AB12 CDE"``."""
    plate = normalise(plate)
    for fmt in _BY_LENGTH.get(len(plate), []):
        if all(c in allowed for c, allowed in zip(plate, fmt.positions, strict=True)):
            cut = fmt.space_after
            return plate if cut >= len(plate) else f"{plate[:cut]} {plate[cut:]}"
    return plate

"""Checking a received JSON object against its exact field rules.

A schema maps every field name to a rule; a rule returns a short problem phrase, or None
when the value is acceptable. ``object_problem`` refuses a missing field, an unknown
one, and any value its rule refuses, naming the field, so every message kind is checked
the same way at receipt (reports, statuses, receipts) and nothing unchecked is stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping

Rule = Callable[[object], str | None]

#: What a database column can hold: a larger integer would fail the insert, not the check.
MAX_INT = 2**63 - 1


def matches(pattern: re.Pattern[str], what: str = "is not valid") -> Rule:
    def rule(v: object) -> str | None:
        if not isinstance(v, str):
            return "must be a string"
        return None if pattern.fullmatch(v) else what

    return rule


def integer(lo: int = 0, hi: int = MAX_INT) -> Rule:
    def rule(v: object) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be an integer"
        return None if lo <= v <= hi else f"must be in {lo}–{hi}"

    return rule


def number(lo: float = -math.inf, hi: float = math.inf) -> Rule:
    def rule(v: object) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return "must be a finite number"
        return None if lo <= v <= hi else f"must be in {lo:g}–{hi:g}"

    return rule


def boolean() -> Rule:
    return lambda v: None if isinstance(v, bool) else "must be true or false"


def one_of(values: Iterable[str]) -> Rule:
    allowed = frozenset(values)

    def rule(v: object) -> str | None:
        return None if isinstance(v, str) and v in allowed else "is not one of the known values"

    return rule


def text(check: Callable[[object], bool], what: str = "must be printable text") -> Rule:
    return lambda v: None if check(v) else what


def nullable(inner: Rule) -> Rule:
    return lambda v: None if v is None else inner(v)


def list_of(inner: Rule, max_items: int) -> Rule:
    def rule(v: object) -> str | None:
        if not isinstance(v, list):
            return "must be a list"
        if len(v) > max_items:
            return f"has more than {max_items} items"
        for item in v:
            problem = inner(item)
            if problem is not None:
                return f"item {problem}"
        return None

    return rule


def exact_object(rules: Mapping[str, Rule], optional: Iterable[str] = ()) -> Rule:
    """An object holding exactly ``rules``' fields (those in ``optional`` may be absent)."""

    def rule(v: object) -> str | None:
        if not isinstance(v, dict):
            return "must be an object"
        return object_problem(v, rules, optional)

    return rule


def object_problem(
    obj: Mapping[str, object], rules: Mapping[str, Rule], optional: Iterable[str] = ()
) -> str | None:
    """The first problem of ``obj`` against ``rules`` as a phrase naming the field, or None."""
    may_lack = frozenset(optional)
    unknown = sorted(set(obj) - set(rules))
    if unknown:
        return f"unknown field {unknown[0][:40]!r}"
    for name, rule in rules.items():
        if name not in obj:
            if name in may_lack:
                continue
            return f"field {name!r} missing"
        problem = rule(obj[name])
        if problem is not None:
            return f"field {name!r} {problem}"
    return None

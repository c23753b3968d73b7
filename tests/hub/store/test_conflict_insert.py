"""The hub's one ``INSERT … ON CONFLICT`` builder, compiled for both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select
from sqlalchemy.dialects import postgresql, sqlite

from agent.hub.store.conflict_insert import conflict_insert, conflict_insert_on

_rows = Table("rows", MetaData(), Column("id", Integer, primary_key=True), Column("note", String))


@pytest.mark.parametrize(
    ("name", "dialect"), [("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())]
)
def test_each_dialect_spells_its_own_conflict_clause(name: str, dialect: object) -> None:
    stmt = conflict_insert(name, _rows).values(id=1, note="a")
    replace = stmt.on_conflict_do_update(
        index_elements=[_rows.c.id], set_={"note": stmt.excluded.note}
    )
    sql = str(replace.compile(dialect=dialect))  # type: ignore[arg-type]
    assert "ON CONFLICT (id) DO UPDATE SET note = excluded.note" in sql
    assert "ON CONFLICT DO NOTHING" in str(
        stmt.on_conflict_do_nothing().compile(dialect=dialect)  # type: ignore[arg-type]
    )


def test_a_connection_picks_its_own_dialect_and_a_row_is_kept_once() -> None:
    engine = create_engine("sqlite://")
    _rows.metadata.create_all(engine)
    with engine.begin() as db:
        for note in ("first", "second"):
            db.execute(
                conflict_insert_on(db, _rows).values(id=1, note=note).on_conflict_do_nothing()
            )
        assert db.execute(select(_rows.c.note)).scalars().all() == ["first"]
        stmt = conflict_insert_on(db, _rows).values(id=1, note="third")
        db.execute(
            stmt.on_conflict_do_update(index_elements=["id"], set_={"note": stmt.excluded.note})
        )
        assert db.execute(select(_rows.c.note)).scalars().all() == ["third"]

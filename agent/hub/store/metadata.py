"""The one ``MetaData`` every hub table belongs to, and the column types they share.

Tables are declared in one module per store (``alert_tables.py``, ``report_tables.py``,
…) on this ``metadata``; ``all_tables.py`` imports them all for the migrations.
Constraint names follow ``NAMING_CONVENTION`` so a migration can name what it changes
on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, Integer, LargeBinary, MetaData, Text

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: A surrogate key: 64-bit on PostgreSQL, SQLite's INTEGER (the row id itself there,
#: which a BIGINT column would not be).
RowId = BigInteger().with_variant(Integer(), "sqlite")
#: Unix seconds as a double on both engines.
Seconds: Double[float] = Double()
#: Binary content (crops): bytea on PostgreSQL, BLOB on SQLite.
Bytes = LargeBinary()
#: Identifiers and text of any length (SQLite and PostgreSQL store TEXT alike).
Str = Text()

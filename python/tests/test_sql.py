"""SQL results: dicts, Pydantic, Arrow (PyCapsule stream), pandas, polars; streaming."""

from __future__ import annotations

import pyarrow as pa
import pytest

import rem_db
from conftest import PERSON


@pytest.fixture
def people(db: rem_db.Database) -> rem_db.Database:
    db.register_schema(PERSON)
    db.insert_batch("person", [{"name": f"p{i:05}", "age": i % 90, "role": f"r{i % 3}"} for i in range(20_000)])
    return db


def test_rows_as_dicts_and_read_once(people: rem_db.Database) -> None:
    r = people.sql("SELECT role, count(*) AS n FROM person GROUP BY role ORDER BY role")
    assert r.columns == ["role", "n"]
    rows = list(r)
    assert rows == [{"role": "r0", "n": 6667}, {"role": "r1", "n": 6667}, {"role": "r2", "n": 6666}]
    with pytest.raises(rem_db.QueryError):
        r.to_list()


def test_arrow_pandas_polars(people: rem_db.Database) -> None:
    t = people.sql("SELECT name, age FROM person WHERE age < 10 ORDER BY name").to_arrow()
    assert isinstance(t, pa.Table) and t.num_rows == len([i for i in range(20_000) if i % 90 < 10])
    assert t.schema.field("age").type == pa.int64()
    df = people.sql("SELECT name, age FROM person WHERE age = 3").to_pandas()
    assert len(df) == len([i for i in range(20_000) if i % 90 == 3])
    assert set(df["age"]) == {3}
    pl = pytest.importorskip("polars")
    pdf = people.sql("SELECT role FROM person WHERE role = 'r1'").to_polars()
    assert isinstance(pdf, pl.DataFrame) and pdf.height == 6667


def test_arrow_c_stream_is_consumed_by_pyarrow(people: rem_db.Database) -> None:
    result = people.sql("SELECT name FROM person")
    reader = pa.RecordBatchReader.from_stream(result)
    total = 0
    batches = 0
    for batch in reader:
        total += batch.num_rows
        batches += 1
    assert total == 20_000
    # Streamed in several batches, not one materialised table.
    assert batches > 1


def test_bad_sql_is_a_query_error(people: rem_db.Database) -> None:
    for q, code in [("SELEC 1", "sql_syntax"), ("SELECT nope FROM person", "sql"), ("SELECT * FROM missing_table", "sql")]:
        with pytest.raises(rem_db.QueryError) as e:
            people.sql(q).to_list()
        assert (e.value.code, e.value.kind) == (code, "invalid_input"), q
    with pytest.raises(rem_db.QueryError):
        people.search("x", table="person", where="age = = 1")

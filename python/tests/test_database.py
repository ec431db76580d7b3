"""The embedded API: schemas from Pydantic, writes, reads, atomic batches, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest
from pydantic import BaseModel, Field

import rem_db
from conftest import PERSON


class Person(BaseModel):
    model_config = {
        "title": "person",
        "json_schema_extra": {"key_field": "name", "indexed_fields": ["role"]},
    }
    name: str
    age: int = Field(ge=0, json_schema_extra={"description": "years"})
    role: Optional[str] = None


def test_pydantic_schema_round_trip(db: rem_db.Database) -> None:
    stored = db.register_schema(Person)
    assert stored["key_field"] == "name"
    assert "person" in [s.get("title", "").lower() for s in db.schemas()]
    ada = Person(name="Ada", age=36, role="math")
    ada_id = db.insert("person", ada)
    got = db.get(ada_id)
    assert got is not None and got["id"] == ada_id and got["entity_type"] == "person"
    back = Person.model_validate(got)
    assert back == ada
    assert db.sql("SELECT name, age, role FROM person").to_pydantic(Person) == [ada]
    # The key is global: lookup finds it, and inserting the same key updates it.
    assert [e["id"] for e in db.lookup("Ada")] == [ada_id]
    assert db.insert("person", {"name": "Ada", "age": 37}) == ada_id
    assert db.get(ada_id)["age"] == 37


def test_schema_from_dict_and_path(db: rem_db.Database, tmp_path: Path) -> None:
    db.register_schema(PERSON)
    doc = dict(PERSON, title="pet")
    f = tmp_path / "pet.json"
    f.write_text(json.dumps(doc))
    db.register_schema(f)
    assert db.schema("pet")["title"] == "pet"
    with pytest.raises(rem_db.SchemaError):
        db.register_schema(tmp_path / "missing.json")
    with pytest.raises(rem_db.SchemaError):
        db.register_schema({"title": "bad", "type": "array"})
    with pytest.raises(rem_db.SchemaError):
        db.register_schema(42)
    with pytest.raises(rem_db.SchemaError):
        db.schema("nope")


def test_batches_are_atomic_and_errors_are_typed(db: rem_db.Database) -> None:
    db.register_schema(PERSON)
    ids = db.insert_batch("person", [{"name": f"p{i}", "age": i} for i in range(50)])
    assert len(ids) == 50 and len(set(ids)) == 50
    before = db.stats()["last_seq"]
    bad = [{"name": "ok1", "age": 1}, {"name": "ok2", "age": "old"}, {"name": "ok3"}]
    with pytest.raises(rem_db.ValidationError) as e:
        db.insert_batch("person", bad)
    assert e.value.index == 1 and e.value.field == "age" and e.value.rule == "type"
    assert isinstance(e.value, ValueError) and e.value.code == "validation"
    assert db.stats()["last_seq"] == before
    assert db.lookup("ok1") == []
    with pytest.raises(rem_db.ValidationError) as e:
        db.insert("person", {"age": 3})
    assert e.value.field == "name" and e.value.rule == "required"
    assert not str(e.value).startswith("record 1")
    with pytest.raises(rem_db.ValidationError) as e:
        db.insert("person", {"name": "n", "age": -1})
    assert e.value.rule == "minimum"
    with pytest.raises(rem_db.SchemaError):
        db.insert("no_such_table", {"a": 1})
    with pytest.raises(rem_db.ValidationError):
        db.insert("person", object())
    with pytest.raises(rem_db.ValidationError):
        db.insert("person", {"name": {1, 2}})
    with pytest.raises(rem_db.NotFoundError) as nf:
        db.delete("00000000-0000-0000-0000-000000000000")
    assert isinstance(nf.value, KeyError)
    with pytest.raises(rem_db.ValidationError):
        db.get("not-an-id")
    assert db.stats()["last_seq"] == before


def test_records_convert_as_json_dumps_would(db: rem_db.Database) -> None:
    """Records cross into Rust as Python objects, not JSON text: what comes back is what
    `json.loads(json.dumps(record))` gives, and what JSON cannot hold is refused whole."""
    db.register_schema({"title": "doc", "type": "object", "properties": {"name": {"type": "string"}}})
    record = {
        "name": "x",
        "nested": {"a": [1, 2.5, None, True, "é"], 3: "int key", None: "none key", False: "bool key"},
        "tuple": (1, "two"),
        "big": 2**63 + 5,
        "neg": -(2**63),
        "unicode": "\u2603 \U0001f600",
    }
    got = db.get(db.insert("doc", record))
    expected = json.loads(json.dumps(record))
    assert {k: got[k] for k in expected} == expected
    before = db.stats()["last_seq"]
    for bad in [{"name": float("nan")}, {"name": float("inf")}, {"n": 2**64}, {"s": {1, 2}}, {(1, 2): "tuple key"}, {"b": b"bytes"}]:
        with pytest.raises(rem_db.ValidationError) as e:
            db.insert_batch("doc", [{"name": "fine"}, bad])
        assert e.value.code == "invalid_json" and "record 2" in str(e.value), str(e.value)
    deep: dict = {}
    cur = deep
    for _ in range(200):
        cur["d"] = {}
        cur = cur["d"]
    with pytest.raises(rem_db.ValidationError, match="nested"):
        db.insert("doc", deep)
    assert db.stats()["last_seq"] == before


def test_delete_get_and_include_deleted(db: rem_db.Database) -> None:
    db.register_schema(PERSON)
    pid = db.insert("person", {"name": "Gone", "age": 1})
    assert db.delete(pid) == "person"
    assert db.get(pid) is None
    assert db.get(pid, include_deleted=True)["deleted_at"] is not None
    assert db.sql("SELECT count(*) AS n FROM person").to_list() == [{"n": 0}]


def test_graph(db: rem_db.Database) -> None:
    db.register_schema(PERSON)
    for n in ["a", "b", "c", "d"]:
        db.insert("person", {"name": n})
    e = db.add_edge("a", "b", "knows", weight=0.5, properties={"since": 2020})
    assert e["edge_type"] == "knows" and e["weight"] == 0.5 and e["properties"] == {"since": 2020}
    db.add_edge("b", "c", "knows")
    db.add_edge("c", "d", "knows")
    names = lambda nodes: sorted(db.get(n["id"])["name"] for n in nodes if n["depth"] > 0)  # noqa: E731
    assert names(db.traverse("a", depth=2)) == ["b", "c"]
    assert names(db.traverse("a", depth=3)) == ["b", "c", "d"]
    assert [x["dst"] for x in db.edges("a", direction="out")] == [db.lookup("b")[0]["id"]]
    assert db.remove_edge("a", "b", "knows") is True
    assert db.remove_edge("a", "b", "knows") is False
    assert db.traverse("a", depth=2) == [] or names(db.traverse("a", depth=2)) == []
    with pytest.raises(rem_db.NotFoundError):
        db.add_edge("a", "nobody", "knows")


def test_close_context_manager_and_closed_errors(db_path: Path) -> None:
    with rem_db.Database(db_path) as db:
        db.register_schema(PERSON)
        assert db.path == str(db_path) and not db.remote
    assert db.closed
    with pytest.raises(rem_db.ClosedError):
        db.get("x")
    db.close()  # twice is fine
    # Closing released the lock: the folder opens again, data intact.
    with rem_db.Database(db_path) as again:
        assert again.schema("person")["title"] == "person"


def test_in_memory_and_config(tmp_path: Path) -> None:
    db = rem_db.Database.in_memory()
    db.register_schema(PERSON)
    db.insert("person", {"name": "m"})
    assert db.sql("SELECT name FROM person").to_list() == [{"name": "m"}]
    with pytest.raises(rem_db.ConfigError):
        rem_db.Database(tmp_path / "x", config={"not_a_setting": 1})
    with pytest.raises(rem_db.ConfigError):
        rem_db.Database(tmp_path / "y", config={"P8_ROCKSDB_COMPRESSION": "rot13"})


def test_tenants_are_separate(db_path: Path) -> None:
    with rem_db.Database(db_path, tenant="acme") as acme:
        acme.register_schema(PERSON)
        acme.insert("person", {"name": "only-acme"})
    with rem_db.Database(db_path, tenant="globex") as globex:
        assert globex.lookup("only-acme") == []
        with pytest.raises(rem_db.SchemaError):
            globex.insert("person", {"name": "x"})


def test_verify_and_stats(db: rem_db.Database) -> None:
    db.register_schema(PERSON)
    db.insert_batch("person", [{"name": f"v{i}", "role": "r"} for i in range(10)])
    assert db.verify() == []
    tables = {t["table"]: t["rows"] for t in db.stats()["tables"]}
    assert tables["person"] == 10

"""Encrypted databases from Python: the password argument, PasswordError, and the same
answers as a plain database."""

from __future__ import annotations

from pathlib import Path

import pytest

import rem_db

# OWASP's 19 MiB x 2 configuration keeps each open quick; weaker values are refused.
FAST = {"P8_ARGON2_MEMORY_KIB": 19456, "P8_ARGON2_ITERATIONS": 2}


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    }


def test_password_creates_opens_and_refuses(db_path: Path) -> None:
    with rem_db.Database(db_path, password="pw", config=FAST) as db:
        db.insert("resources", {"name": "secret-note", "uri": "mem://n", "content": "xyzzy"})
    assert (db_path / "ENCRYPTION").is_file()
    before = _files(db_path)
    with pytest.raises(rem_db.PasswordError) as missing:
        rem_db.Database(db_path, config=FAST)
    assert "encrypted" in str(missing.value)
    with pytest.raises(rem_db.PasswordError) as wrong:
        rem_db.Database(db_path, password="nope", config=FAST)
    assert "wrong password" in str(wrong.value)
    assert _files(db_path) == before, "a refused open changed files"
    with rem_db.Database(db_path, password="pw", config=FAST) as db:
        rows = db.sql("SELECT name, content FROM resources").to_list()
        assert rows == [{"name": "secret-note", "content": "xyzzy"}]
        with pytest.raises(rem_db.ValidationError) as refused:
            db.export("resources", str(db_path.parent / "out.jsonl"))
        assert "plaintext" in str(refused.value)
        assert db.export("resources", str(db_path.parent / "out.jsonl"), plaintext=True) == 1
    with pytest.raises(rem_db.ConfigError):
        rem_db.Database(db_path, password="", config=FAST)


def test_a_password_for_a_plain_database_is_refused(db_path: Path) -> None:
    rem_db.Database(db_path).close()
    with pytest.raises(rem_db.PasswordError) as err:
        rem_db.Database(db_path, password="pw", config=FAST)
    assert "not encrypted" in str(err.value)

"""Fixtures: every test gets its own P8_HOME and database folder, the local embedding
model installed by the setup (scripts/install-model.sh), and no inherited P8_* settings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

MODELS = os.environ.get("P8_MODELS_DIR") or str(
    Path(os.environ.get("P8_HOME") or Path.home() / ".p8") / "models"
)


@pytest.fixture(autouse=True)
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("P8_"):
            monkeypatch.delenv(key)
    home = tmp_path / "p8"
    home.mkdir()
    monkeypatch.setenv("P8_HOME", str(home))
    monkeypatch.setenv("P8_MODELS_DIR", MODELS)
    return home


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db"


@pytest.fixture
def db(db_path: Path) -> Iterator["rem_db.Database"]:
    import rem_db

    d = rem_db.Database(db_path)
    yield d
    d.close()


def rem_command() -> list[str]:
    """The `rem` entry point of this environment (the package's, calling Rust's run)."""
    exe = Path(sys.executable).with_name("rem")
    return [str(exe)]


def run_rem(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        rem_command() + list(args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env or os.environ.copy(),
    )


class Server:
    """`rem serve` on a free loopback port, as a real process."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        server_file = db_path / "SERVER"
        if server_file.exists():
            server_file.unlink()
        env = os.environ.copy()
        env["P8_DB_PATH"] = str(db_path)
        self.proc = subprocess.Popen(
            rem_command() + ["serve", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not server_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"rem serve exited: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("rem serve did not start in 60 s")
            time.sleep(0.05)
        self.address = json.loads(server_file.read_text())["address"]
        self.token = (db_path / "TOKEN").read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def server(db_path: Path) -> Iterator[Server]:
    import rem_db

    # A database with a schema, then served.
    with rem_db.Database(db_path) as d:
        d.register_schema(PERSON)
    s = Server(db_path)
    yield s
    s.stop()


PERSON = {
    "title": "person",
    "type": "object",
    "key_field": "name",
    "indexed_fields": ["role"],
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "role": {"type": "string"},
    },
    "required": ["name"],
}

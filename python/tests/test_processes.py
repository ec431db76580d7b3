"""Process safety (fork, a second process, a server holding the database), the GIL,
async, the `rem` entry point and the typed service through `connect`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import rem_db
from conftest import PERSON, Server, run_rem
from rem_db.aio import AsyncDatabase


def _child(code: str, db_path: Path) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter with `rem_db` and DB (the path) defined."""
    prog = "import rem_db, sys\nDB = sys.argv[1]\n" + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", prog, str(db_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_forked_child_gets_a_clear_error(db: rem_db.Database) -> None:
    db.register_schema(PERSON)
    pid_ = db.insert("person", {"name": "parent"})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what happened through the pipe, then _exit
        os.close(r)
        try:
            db.get(pid_)
            msg = b"no error"
        except rem_db.ClosedError as e:
            msg = b"ClosedError: " + str(e).encode()
        except BaseException as e:  # noqa: BLE001
            msg = repr(e).encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    got = os.read(r, 4096).decode()
    os.close(r)
    assert os.WIFEXITED(status), status
    assert got.startswith("ClosedError") and "fork" in got, got
    assert db.get(pid_)["name"] == "parent"  # the parent is unaffected


def test_second_process_is_locked_out_then_reads_read_only(db: rem_db.Database, db_path: Path) -> None:
    db.register_schema(PERSON)
    db.insert("person", {"name": "holder"})
    r = _child(
        """
        try:
            rem_db.Database(DB)
            print("opened")
        except rem_db.DatabaseLockedError as e:
            assert isinstance(e, OSError)
            print("locked", e.path == DB, "read_only=True" in str(e))
        with rem_db.Database(DB, read_only=True) as ro:
            print("read", [x["name"] for x in ro.lookup("holder")])
            try:
                ro.insert("person", {"name": "x"})
            except rem_db.ReadOnlyError:
                print("read-only refused")
        """,
        db_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["locked True True", "read ['holder']", "read-only refused"], r.stdout


def test_close_releases_the_database_for_another_process(db_path: Path) -> None:
    d = rem_db.Database(db_path)
    d.register_schema(PERSON)
    d.close()
    r = _child("rem_db.Database(DB).insert('person', {'name': 'next'}); print('ok')", db_path)
    assert r.stdout.strip() == "ok", r.stderr


def test_a_server_holding_the_database_serves_other_processes(server: Server, db_path: Path) -> None:
    # Opening the served path goes through the server (found by its SERVER file).
    r = _child(
        """
        db = rem_db.Database(DB)
        print(db.remote)
        i = db.insert("person", {"name": "via-server", "age": 5})
        print(db.get(i)["name"])
        """,
        db_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "via-server"]


def test_connect_speaks_the_typed_service(server: Server) -> None:
    db = rem_db.connect(server.address, token=server.token)
    assert db.remote and db.path is None
    ids = db.insert_batch("person", [{"name": f"c{i}", "age": i} for i in range(100)])
    assert len(ids) == 100
    assert db.get(ids[3])["name"] == "c3"
    assert db.sql("SELECT count(*) AS n FROM person").to_list() == [{"n": 100}]
    assert db.sql("SELECT name FROM person WHERE age < 3 ORDER BY name").to_arrow().column("name").to_pylist() == ["c0", "c1", "c2"]
    # Typed errors cross the wire (code, field and rule from the status metadata).
    with pytest.raises(rem_db.ValidationError) as e:
        db.insert_batch("person", [{"name": "ok"}, {"name": "bad", "age": "x"}])
    assert (e.value.index, e.value.field, e.value.rule) == (1, "age", "type")
    with pytest.raises(rem_db.ValidationError) as e:
        db.insert("person", {"name": "neg", "age": -4})
    assert (e.value.field, e.value.rule) == ("age", "minimum")
    with pytest.raises(rem_db.QueryError):
        db.sql("SELECT * FROM nowhere").to_list()
    with pytest.raises(rem_db.NotFoundError):
        db.delete("00000000-0000-0000-0000-000000000000")
    with pytest.raises(rem_db.SchemaError):
        db.insert("nowhere", {"a": 1})
    db.close()
    with pytest.raises(rem_db.AuthenticationError):
        rem_db.connect(server.address, token="wrong").get(ids[0])
    with pytest.raises(rem_db.ServerConnectionError):
        rem_db.connect("127.0.0.1:1", token="t").get(ids[0])


def test_gil_is_released_during_native_calls(db: rem_db.Database) -> None:
    db.register_schema(PERSON)
    db.insert_batch("person", [{"name": f"g{i}", "age": i % 50} for i in range(30_000)])
    # One long native call in a thread; the main thread keeps running Python meanwhile.
    # If the call held the GIL, the main thread could not run at all until it returned.
    done = threading.Event()
    result: list = []

    def work() -> None:
        q = "SELECT a.age, count(*) AS n FROM person a JOIN person b ON a.age = b.age GROUP BY a.age"
        result.append(db.sql(q).to_list())
        done.set()

    t = threading.Thread(target=work)
    ticks = 0
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    assert len(result[0]) == 50
    assert ticks > 20, f"the main thread ran {ticks} times during the call"


def test_threads_share_one_database(db: rem_db.Database) -> None:
    db.register_schema(PERSON)
    errors: list = []

    def writer(k: int) -> None:
        try:
            db.insert_batch("person", [{"name": f"t{k}-{i}"} for i in range(200)])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.sql("SELECT count(*) AS n FROM person").to_list() == [{"n": 1600}]


def test_async_database(db_path: Path) -> None:
    async def main() -> None:
        async with await AsyncDatabase.open(db_path) as db:
            await db.register_schema(PERSON)
            ids = await asyncio.gather(*(db.insert("person", {"name": f"a{i}"}) for i in range(20)))
            assert len(set(ids)) == 20
            got = await db.get(ids[0])
            assert got["name"] == "a0"
            rows = await db.sql("SELECT count(*) AS n FROM person")
            assert rows == [{"n": 20}]
            with pytest.raises(rem_db.ValidationError):
                await db.insert("person", {"age": 1})
            table = await db.sql_arrow("SELECT name FROM person")
            assert table.num_rows == 20

    asyncio.run(main())


def test_rem_entry_point_runs_the_rust_cli(tmp_path: Path) -> None:
    v = run_rem("--version")
    assert v.returncode == 0 and v.stdout.startswith("rem ")
    env = dict(os.environ, P8_DB_PATH=str(tmp_path / "clidb"))
    assert run_rem("init", env=env).returncode == 0
    out = run_rem("insert", "resources", '{"name": "n1", "content": "hello"}', env=env)
    assert out.returncode == 0, out.stderr
    q = run_rem("query", "SELECT name FROM resources", "--format", "json", env=env)
    assert q.returncode == 0 and '"n1"' in q.stdout
    bad = run_rem("query", "SELEC", env=env)
    assert bad.returncode == 1 and "syntax" in bad.stderr.lower()
    assert run_rem("no-such-command").returncode == 2
    # The package opens what the CLI wrote.
    with rem_db.Database(tmp_path / "clidb") as d:
        assert [e["name"] for e in d.lookup("n1")] == ["n1"]


def test_stubs_match_the_native_module() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "rem_db._native", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ctrl_c_interrupts_a_long_call(db_path: Path) -> None:
    # A child runs a query that takes far longer than the test waits; SIGINT must end
    # the call with KeyboardInterrupt promptly.
    with rem_db.Database(db_path) as d:
        d.register_schema(PERSON)
        d.insert_batch("person", [{"name": f"k{i}", "age": i} for i in range(3000)])
    prog = textwrap.dedent(
        """
        import rem_db, sys, time
        db = rem_db.Database(sys.argv[1])
        print("ready", flush=True)
        t = time.monotonic()
        try:
            db.sql("SELECT count(*) FROM person a, person b, person c WHERE a.age + b.age + c.age = -1").to_list()
            print("finished", flush=True)
        except KeyboardInterrupt:
            print("interrupted", round(time.monotonic() - t, 1), flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", prog, str(db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        child.send_signal(2)  # SIGINT, as Ctrl-C sends
        out, _ = child.communicate(timeout=30)
        assert out.startswith("interrupted"), out
    finally:
        if child.poll() is None:
            child.kill()

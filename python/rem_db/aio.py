"""``AsyncDatabase``: the methods of :class:`rem_db.Database` as coroutines.

Each call runs on a thread of a pool (the native calls release the GIL), so the event
loop keeps running; there is no second event loop::

    from rem_db.aio import AsyncDatabase

    async with await AsyncDatabase.open("./db") as db:
        await db.insert("resources", {"name": "a", "content": "hello"})
        hits = await db.search("greeting", table="resources")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from typing import Any, Callable, Optional

from . import Database, ResultSet, connect


class AsyncDatabase:
    """An asynchronous facade over a :class:`~rem_db.Database`.

    >>> db = await AsyncDatabase.open("./db")             # doctest: +SKIP
    """

    _METHODS = (
        "register_schema", "schemas", "schema", "insert", "insert_batch", "delete",
        "get", "lookup", "search", "add_edge", "remove_edge", "edges", "traverse",
        "ingest", "export", "stats", "verify",
    )

    def __init__(self, db: Database, *, max_workers: Optional[int] = None) -> None:
        self._db = db
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="rem_db"
        )

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> "AsyncDatabase":
        """Opens like :class:`~rem_db.Database` (on a worker thread).

        >>> db = await AsyncDatabase.open("./db", read_only=True)  # doctest: +SKIP
        """
        loop = asyncio.get_running_loop()
        db = await loop.run_in_executor(None, functools.partial(Database, *args, **kwargs))
        return cls(db)

    @classmethod
    async def connect(cls, address: str, **kwargs: Any) -> "AsyncDatabase":
        """Like :func:`rem_db.connect`.

        >>> db = await AsyncDatabase.connect("127.0.0.1:8790", token=t)  # doctest: +SKIP
        """
        loop = asyncio.get_running_loop()
        db = await loop.run_in_executor(None, functools.partial(connect, address, **kwargs))
        return cls(db)

    @property
    def sync(self) -> Database:
        """The underlying synchronous database."""
        return self._db

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        if name not in AsyncDatabase._METHODS:
            raise AttributeError(name)
        method = getattr(self._db, name)

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._run(method, *args, **kwargs)

        return call

    async def sql(self, query: str, **kwargs: Any) -> list[dict]:
        """Runs a query and returns every row as a dict.

        >>> rows = await db.sql("SELECT name FROM person")  # doctest: +SKIP
        """
        return await self._run(lambda: self._db.sql(query, **kwargs).to_list())

    async def sql_arrow(self, query: str, **kwargs: Any) -> Any:
        """Runs a query and returns a ``pyarrow.Table``.

        >>> table = await db.sql_arrow("SELECT * FROM person")  # doctest: +SKIP
        """
        return await self._run(lambda: self._db.sql(query, **kwargs).to_arrow())

    async def close(self) -> None:
        """Closes the database and the thread pool."""
        await self._run(self._db.close)
        self._pool.shutdown(wait=False)

    async def __aenter__(self) -> "AsyncDatabase":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AsyncDatabase", "ResultSet"]

"""LangChain adapters over a :class:`rem_db.Database`.

- :class:`RemVectorStore`, a ``VectorStore``: documents in one table, embedded by the
  LangChain ``Embeddings`` you give (the table's provider is ``external:<dims>``, so
  the database stores and searches your vectors), metadata stored and returned exactly,
  ids kept as given.
- :class:`RemKeyValueStore`, a ``BaseStore[str, Any]`` over the global key lookup.

::

    from rem_db.integrations.langchain import RemVectorStore

    store = RemVectorStore(rem_db.Database("./db"), embedding=my_embeddings)
    store.add_texts(["Rust is fast"], metadatas=[{"src": "notes"}], ids=["n1"])
    store.similarity_search("which language is fast?", k=1)
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.stores import BaseStore
from langchain_core.vectorstores import VectorStore

from .. import Database, NotFoundError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"a table name is lower-case letters, digits and _: not {name!r}")
    return name


_MISSING = object()


class RemVectorStore(VectorStore):
    """A LangChain vector store in a REM table.

    ``collection`` names the table (created on first use). Its vectors come from
    ``embedding``; their size is learnt by embedding one probe text.

    >>> store = RemVectorStore(rem_db.Database.in_memory(), embedding=emb)  # doctest: +SKIP
    """

    def __init__(self, db: Database, embedding: Embeddings, *, collection: str = "langchain_documents") -> None:
        self._db = db
        self._embedding = embedding
        self._table = _check_name(collection)
        dims = len(embedding.embed_query("dimension probe"))
        db.register_schema(
            {
                "title": self._table,
                "type": "object",
                "description": "LangChain documents",
                "key_field": "doc_id",
                "embedding_fields": ["text"],
                "embedding_provider": f"external:{dims}",
                "properties": {
                    "doc_id": {"type": "string"},
                    "text": {"type": "string"},
                    "metadata": {"type": "object"},
                },
                "required": ["doc_id", "text"],
            }
        )

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def database(self) -> Database:
        """The database the documents are in."""
        return self._db

    # -- writes --------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        if not texts:
            return []
        doc_ids = [(ids[i] if ids is not None and ids[i] else str(uuid.uuid4())) for i in range(len(texts))]
        vectors = self._embedding.embed_documents(texts)
        records = [
            {"doc_id": doc_ids[i], "text": texts[i], "metadata": dict(metadatas[i]) if metadatas else {}}
            for i in range(len(texts))
        ]
        self._db.insert_batch(self._table, records, vectors=vectors)
        return doc_ids

    def add_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        if "ids" not in kwargs:
            given = [d.id for d in documents]
            if any(given):
                kwargs["ids"] = given
        return self.add_texts(
            [d.page_content for d in documents],
            [dict(d.metadata) for d in documents],
            **kwargs,
        )

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes documents by id; ids that do not exist are ignored."""
        if ids is None:
            raise ValueError("give the ids to delete")
        for entity in self._entities(ids):
            try:
                self._db.delete(entity["id"])
            except NotFoundError:
                pass
        return True

    # -- reads ---------------------------------------------------------------

    def _entities(self, ids: Sequence[str]) -> List[dict]:
        out = []
        for doc_id in ids:
            out.extend(e for e in self._db.lookup(doc_id) if e["entity_type"] == self._table and e["doc_id"] == doc_id)
        return out

    @staticmethod
    def _document(entity: dict) -> Document:
        return Document(id=entity["doc_id"], page_content=entity["text"], metadata=entity.get("metadata") or {})

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        return [self._document(e) for e in self._entities(ids)]

    def similarity_search_by_vector_with_score(
        self,
        embedding: List[float],
        k: int = 4,
        where: Optional[str] = None,
        filter: Optional[dict] = None,
    ) -> List[Tuple[Document, float]]:
        """The ``k`` nearest documents with their cosine similarity. ``where`` is a SQL
        predicate over ``doc_id`` and ``text``; ``filter`` (LangChain's convention) keeps
        documents whose metadata has each given key equal to its value. With a filter the
        search widens (4k, 16k, ... up to every document) until ``k`` documents match or
        none is left, so the answer is the ``k`` nearest matching ones."""
        if not filter:
            hits = self._db.search(embedding, table=self._table, top_k=k, where=where)
            return [(self._document(h), h.score) for h in hits]
        if not isinstance(filter, dict):
            raise ValueError("filter must be a dict of metadata key -> value")
        wanted = list(filter.items())
        width = max(4 * k, 16)
        while True:
            hits = self._db.search(embedding, table=self._table, top_k=width, where=where)
            kept = [h for h in hits if all((h.get("metadata") or {}).get(key, _MISSING) == value for key, value in wanted)]
            if len(kept) >= k or len(hits) < width:
                return [(self._document(h), h.score) for h in kept[:k]]
            width *= 4

    def similarity_search_by_vector(self, embedding: List[float], k: int = 4, **kwargs: Any) -> List[Document]:
        found = self.similarity_search_by_vector_with_score(embedding, k, kwargs.get("where"), kwargs.get("filter"))
        return [d for d, _ in found]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> List[Tuple[Document, float]]:
        return self.similarity_search_by_vector_with_score(
            self._embedding.embed_query(query), k, kwargs.get("where"), kwargs.get("filter")
        )

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> List[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Any:
        # Cosine similarity in [-1, 1] → relevance in [0, 1].
        return lambda score: (score + 1.0) / 2.0

    @classmethod
    def from_texts(
        cls,
        texts: List[str],
        embedding: Embeddings,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        db: Optional[Database] = None,
        collection: str = "langchain_documents",
        **kwargs: Any,
    ) -> "RemVectorStore":
        store = cls(db if db is not None else Database.in_memory(), embedding, collection=collection)
        store.add_texts(texts, metadatas, ids=ids)
        return store


class RemKeyValueStore(BaseStore[str, Any]):
    """A LangChain key-value store over the database's global key lookup: each value
    (anything JSON can hold) is a record of ``collection`` keyed by its key.

    >>> kv = RemKeyValueStore(rem_db.Database.in_memory())  # doctest: +SKIP
    >>> kv.mset([("a", {"x": 1})]); kv.mget(["a"])           # doctest: +SKIP
    [{'x': 1}]
    """

    def __init__(self, db: Database, *, collection: str = "langchain_kv") -> None:
        self._db = db
        self._table = _check_name(collection)
        db.register_schema(
            {
                "title": self._table,
                "type": "object",
                "description": "LangChain key-value pairs",
                "key_field": "key",
                "properties": {"key": {"type": "string"}, "value_json": {"type": "string"}},
                "required": ["key", "value_json"],
            }
        )

    def _entity(self, key: str) -> Optional[dict]:
        for e in self._db.lookup(key):
            if e["entity_type"] == self._table and e["key"] == key:
                return e
        return None

    def mget(self, keys: Sequence[str]) -> List[Optional[Any]]:
        out: List[Optional[Any]] = []
        for k in keys:
            e = self._entity(k)
            out.append(None if e is None else json.loads(e["value_json"]))
        return out

    def mset(self, key_value_pairs: Sequence[Tuple[str, Any]]) -> None:
        records = [{"key": k, "value_json": json.dumps(v)} for k, v in key_value_pairs]
        if records:
            self._db.insert_batch(self._table, records)

    def mdelete(self, keys: Sequence[str]) -> None:
        for k in keys:
            e = self._entity(k)
            if e is not None:
                self._db.delete(e["id"])

    def yield_keys(self, *, prefix: Optional[str] = None) -> Iterator[str]:
        query = f"SELECT key FROM {self._table}"
        if prefix:
            escaped = prefix.replace("'", "''").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query += f" WHERE key LIKE '{escaped}%' ESCAPE '\\'"
        for row in self._db.sql(query):
            yield row["key"]

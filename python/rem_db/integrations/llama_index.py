"""A LlamaIndex vector store over a :class:`rem_db.Database`.

:class:`RemLlamaVectorStore` keeps LlamaIndex nodes in one table (vectors from the
index's embedding model; the table's provider is ``external:<dims>``): ``add``,
``delete`` by ``ref_doc_id``, ``query`` with metadata filters, ``get_nodes``::

    from llama_index.core import StorageContext, VectorStoreIndex
    from rem_db.integrations.llama_index import RemLlamaVectorStore

    store = RemLlamaVectorStore(rem_db.Database("./db"), dims=384)
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store))
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from .. import Database
from .langchain import _check_name

_OPS = {
    FilterOperator.EQ: "=",
    FilterOperator.NE: "!=",
    FilterOperator.GT: ">",
    FilterOperator.GTE: ">=",
    FilterOperator.LT: "<",
    FilterOperator.LTE: "<=",
}


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def _accessor(key: str, sample: Any) -> str:
    k = key.replace("'", "''")
    if isinstance(sample, bool):
        return f"json_get_bool(metadata, '{k}')"
    if isinstance(sample, int):
        return f"json_get_int(metadata, '{k}')"
    if isinstance(sample, float):
        return f"json_get_float(metadata, '{k}')"
    return f"json_get_str(metadata, '{k}')"


def _predicate(filters: MetadataFilters) -> str:
    parts = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            parts.append(f"({_predicate(f)})")
            continue
        assert isinstance(f, MetadataFilter)
        if f.operator in _OPS:
            parts.append(f"{_accessor(f.key, f.value)} {_OPS[f.operator]} {_literal(f.value)}")
        elif f.operator in (FilterOperator.IN, FilterOperator.NIN):
            values = list(f.value or [])  # type: ignore[arg-type]
            if not values:
                parts.append("false" if f.operator == FilterOperator.IN else "true")
                continue
            neg = "NOT " if f.operator == FilterOperator.NIN else ""
            parts.append(f"{_accessor(f.key, values[0])} {neg}IN ({', '.join(_literal(v) for v in values)})")
        else:
            raise NotImplementedError(f"metadata filter operator {f.operator} is not supported")
    joiner = " OR " if filters.condition == FilterCondition.OR else " AND "
    return joiner.join(parts) or "true"


class RemLlamaVectorStore(BasePydanticVectorStore):
    """LlamaIndex nodes in a REM table; ``dims`` is the embedding model's size.

    >>> store = RemLlamaVectorStore(rem_db.Database.in_memory(), dims=384)  # doctest: +SKIP
    """

    stores_text: bool = True
    flat_metadata: bool = False
    table: str = "llama_nodes"
    _db: Database = PrivateAttr()

    def __init__(self, db: Database, dims: int, *, collection: str = "llama_nodes") -> None:
        super().__init__(table=_check_name(collection))
        self._db = db
        db.register_schema(
            {
                "title": self.table,
                "type": "object",
                "description": "LlamaIndex nodes",
                "key_field": "node_id",
                "indexed_fields": ["ref_doc_id"],
                "embedding_fields": ["text"],
                "embedding_provider": f"external:{dims}",
                "properties": {
                    "node_id": {"type": "string"},
                    "ref_doc_id": {"type": "string"},
                    "text": {"type": "string"},
                    "metadata": {"type": "object"},
                    "node_json": {"type": "string"},
                },
                "required": ["node_id", "text"],
            }
        )

    @property
    def client(self) -> Database:
        return self._db

    def add(self, nodes: List[BaseNode], **kwargs: Any) -> List[str]:
        if not nodes:
            return []
        records, vectors = [], []
        for n in nodes:
            stored = node_to_metadata_dict(n, remove_text=False, flat_metadata=False)
            records.append(
                {
                    "node_id": n.node_id,
                    "ref_doc_id": n.ref_doc_id or "",
                    "text": n.get_content(),
                    "metadata": dict(n.metadata),
                    "node_json": json.dumps(stored),
                }
            )
            vectors.append(n.get_embedding())
        self._db.insert_batch(self.table, records, vectors=vectors)
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        rows = self._db.sql(
            f"SELECT id FROM {self.table} WHERE ref_doc_id = {_literal(ref_doc_id)}"
        ).to_list()
        for r in rows:
            self._db.delete(r["id"])

    def _node(self, entity: dict) -> BaseNode:
        node = metadata_dict_to_node(json.loads(entity["node_json"]), text=entity["text"])
        return node

    def get_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **kwargs: Any,
    ) -> List[BaseNode]:
        where = []
        if node_ids is not None:
            if not node_ids:
                return []
            where.append(f"node_id IN ({', '.join(_literal(i) for i in node_ids)})")
        if filters is not None:
            where.append(f"({_predicate(filters)})")
        q = f"SELECT node_id, text, node_json FROM {self.table}"
        if where:
            q += " WHERE " + " AND ".join(where)
        return [self._node(e) for e in self._db.sql(q)]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if query.query_embedding is None:
            raise ValueError("RemLlamaVectorStore answers embedding queries (query_embedding)")
        where = None
        conditions = []
        if query.filters is not None and query.filters.filters:
            conditions.append(f"({_predicate(query.filters)})")
        if query.doc_ids:
            conditions.append(f"ref_doc_id IN ({', '.join(_literal(i) for i in query.doc_ids)})")
        if query.node_ids:
            conditions.append(f"node_id IN ({', '.join(_literal(i) for i in query.node_ids)})")
        if conditions:
            # Metadata lives in a JSON column: SQL selects the matching nodes, and the
            # vector search is restricted to exactly those (inside the HNSW walk).
            ids = [r["node_id"] for r in self._db.sql(f"SELECT node_id FROM {self.table} WHERE {' AND '.join(conditions)}")]
            if not ids:
                return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
            where = f"node_id IN ({', '.join(_literal(i) for i in ids)})"
        hits = self._db.search(query.query_embedding, table=self.table, top_k=query.similarity_top_k, where=where)
        return VectorStoreQueryResult(
            nodes=[self._node(h) for h in hits],
            similarities=[h.score for h in hits],
            ids=[h["node_id"] for h in hits],
        )

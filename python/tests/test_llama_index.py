"""The LlamaIndex vector store, in the manner of llama-index's own vector-store tests:
add, query with and without metadata filters, delete by ref_doc_id, get_nodes, and a
VectorStoreIndex over it that retrieves the right node."""

from __future__ import annotations

import hashlib
from typing import List

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.base.embeddings.base import BaseEmbedding  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

import rem_db  # noqa: E402
from rem_db.integrations.llama_index import RemLlamaVectorStore  # noqa: E402

DIMS = 32


def bag_of_words(text: str) -> List[float]:
    """A deterministic embedding: hashed word counts, unit length (no model download)."""
    v = [0.0] * DIMS
    for w in text.lower().replace(".", " ").split():
        v[int(hashlib.md5(w.encode()).hexdigest(), 16) % DIMS] += 1.0
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / norm for x in v]


class BagOfWords(BaseEmbedding):
    def _get_query_embedding(self, query: str) -> List[float]:
        return bag_of_words(query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return bag_of_words(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return bag_of_words(text)


TEXTS = [
    ("n1", "doc-a", "RocksDB is an embeddable persistent key value store.", {"topic": "db", "year": 2012}),
    ("n2", "doc-a", "Pasta cooks in salted boiling water for nine minutes.", {"topic": "food", "year": 2020}),
    ("n3", "doc-b", "The tennis match lasted three sets in the rain.", {"topic": "sport", "year": 2021}),
    ("n4", "doc-b", "SQLite is a small self contained SQL database engine.", {"topic": "db", "year": 2000}),
]


def nodes() -> List[TextNode]:
    out = []
    for nid, ref, text, meta in TEXTS:
        n = TextNode(id_=nid, text=text, metadata=meta, embedding=bag_of_words(text))
        n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ref)
        out.append(n)
    return out


@pytest.fixture
def store() -> RemLlamaVectorStore:
    s = RemLlamaVectorStore(rem_db.Database.in_memory(), dims=DIMS)
    assert s.add(nodes()) == ["n1", "n2", "n3", "n4"]
    return s


def test_query_filters_delete_and_get(store: RemLlamaVectorStore) -> None:
    q = bag_of_words("which key value store is embeddable")
    r = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=2))
    assert r.ids[0] == "n1" and r.nodes[0].metadata == {"topic": "db", "year": 2012}
    assert r.similarities[0] >= r.similarities[1]
    only_food = MetadataFilters(filters=[MetadataFilter(key="topic", value="food")])
    r = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=3, filters=only_food))
    assert r.ids == ["n2"]
    recent = MetadataFilters(filters=[MetadataFilter(key="year", value=2015, operator=FilterOperator.GT)])
    r = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=4, filters=recent))
    assert sorted(r.ids) == ["n2", "n3"]
    either = MetadataFilters(
        filters=[MetadataFilter(key="topic", value=["sport", "food"], operator=FilterOperator.IN)]
    )
    assert sorted(store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=4, filters=either)).ids) == ["n2", "n3"]
    assert sorted(n.node_id for n in store.get_nodes(node_ids=["n3", "n4"])) == ["n3", "n4"]
    assert store.get_nodes(node_ids=["n3"])[0].ref_doc_id == "doc-b"
    store.delete("doc-a")
    left = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=4))
    assert sorted(left.ids) == ["n3", "n4"]
    assert store.get_nodes(node_ids=["n1"]) == []


def test_vector_store_index_retrieves_the_right_node() -> None:
    store = RemLlamaVectorStore(rem_db.Database.in_memory(), dims=DIMS)
    index = VectorStoreIndex(
        nodes=[TextNode(id_=nid, text=text, metadata=meta) for nid, _, text, meta in TEXTS],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=BagOfWords(),
    )
    got = index.as_retriever(similarity_top_k=1).retrieve("how long does pasta cook in boiling water")
    assert [n.node.node_id for n in got] == ["n2"]
    assert "Pasta" in got[0].node.get_content()

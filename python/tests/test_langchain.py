"""LangChain's own standard tests, unmodified, against the adapters."""

from __future__ import annotations

from typing import Generator

import pytest

pytest.importorskip("langchain_tests")

from langchain_core.vectorstores import VectorStore  # noqa: E402
from langchain_tests.integration_tests.base_store import BaseStoreAsyncTests, BaseStoreSyncTests  # noqa: E402
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests  # noqa: E402

import rem_db  # noqa: E402
from rem_db.integrations.langchain import RemKeyValueStore, RemVectorStore  # noqa: E402


class TestRemVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        db = rem_db.Database.in_memory()
        try:
            yield RemVectorStore(db, self.get_embeddings())
        finally:
            db.close()


class TestRemKeyValueStore(BaseStoreSyncTests):
    @pytest.fixture()
    def kv_store(self) -> Generator[RemKeyValueStore, None, None]:  # type: ignore[override]
        db = rem_db.Database.in_memory()
        try:
            yield RemKeyValueStore(db)
        finally:
            db.close()

    @pytest.fixture()
    def three_values(self) -> tuple[object, object, object]:  # type: ignore[override]
        return ({"a": 1}, [1, 2, "three"], "plain text")


class TestRemKeyValueStoreAsync(BaseStoreAsyncTests):
    @pytest.fixture()
    async def kv_store(self) -> RemKeyValueStore:  # type: ignore[override]
        return RemKeyValueStore(rem_db.Database.in_memory())

    @pytest.fixture()
    def three_values(self) -> tuple[object, object, object]:  # type: ignore[override]
        return ({"a": 1}, [1, 2, "three"], "plain text")


def test_vectors_of_the_wrong_size_are_refused() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    db = rem_db.Database.in_memory()
    store = RemVectorStore(db, DeterministicFakeEmbedding(size=8))
    with pytest.raises(rem_db.EmbeddingError):
        db.insert_batch("langchain_documents", [{"doc_id": "x", "text": "t"}], vectors=[[0.1] * 7])
    with pytest.raises(rem_db.ValidationError):
        db.search([0.5] * 3, table="langchain_documents")
    # Text search on a table whose vectors come from the caller says so.
    with pytest.raises(rem_db.EmbeddingError):
        db.search("words", table="langchain_documents")
    assert store.similarity_search("anything") == []

"""mem0 (the `mem0ai` package) with its `langchain` vector-store provider over
RemVectorStore: memories are added, searched per user, read, updated and deleted in a
REM table. The LLM is never called (`infer=False` stores the text as given); embeddings
are a bag of hashed words, so similar texts really are near."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

os.environ["MEM0_TELEMETRY"] = "False"  # mem0 would post usage events to posthog.com

from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from mem0 import Memory  # noqa: E402

import rem_db  # noqa: E402
from rem_db.integrations.langchain import RemVectorStore  # noqa: E402

DIMS = 64


class Words(Embeddings):
    """Each word (lower case, letters only) adds 1 to one of 64 buckets; unit length."""

    def _one(self, text: str) -> list[float]:
        v = [0.0] * DIMS
        for w in "".join(c.lower() if c.isalpha() else " " for c in text).split():
            v[int(hashlib.sha1(w.encode()).hexdigest(), 16) % DIMS] += 1.0
        n = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / n for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def test_mem0_memories_live_in_a_rem_table(tmp_path: Path) -> None:
    db = rem_db.Database(tmp_path / "db")
    store = RemVectorStore(db, Words(), collection="mem0_memories")
    memory = Memory.from_config(
        {
            "vector_store": {"provider": "langchain", "config": {"client": store}},
            "embedder": {"provider": "langchain", "config": {"model": Words()}},
            "llm": {"provider": "langchain", "config": {"model": FakeListChatModel(responses=["{}"])}},
            "history_db_path": str(tmp_path / "history.db"),
        }
    )
    added = memory.add("I like hiking in the Alps every summer", user_id="alice", infer=False)
    memory.add("Alice's favourite food is ramen", user_id="alice", infer=False)
    memory.add("Bob goes hiking in the Alps too", user_id="bob", infer=False)
    alice_hike = added["results"][0]["id"]

    # The memories are entities of the table, with mem0's payload as metadata.
    rows = db.sql("SELECT doc_id, text FROM mem0_memories").to_list()
    assert len(rows) == 3 and alice_hike in {r["doc_id"] for r in rows}

    found = memory.search("hiking in the Alps", filters={"user_id": "alice"})["results"]
    assert found and found[0]["id"] == alice_hike, found
    assert all("Bob" not in f["memory"] for f in found), found  # the user filter holds
    bob = memory.search("hiking in the Alps", filters={"user_id": "bob"})["results"]
    assert [f["memory"] for f in bob] == ["Bob goes hiking in the Alps too"]

    assert memory.get(alice_hike)["memory"] == "I like hiking in the Alps every summer"
    memory.update(alice_hike, "I like climbing in the Dolomites")
    assert memory.get(alice_hike)["memory"] == "I like climbing in the Dolomites"
    top = memory.search("climbing Dolomites", filters={"user_id": "alice"})["results"]
    assert top[0]["id"] == alice_hike

    memory.delete(alice_hike)
    assert memory.get(alice_hike) is None
    left = memory.search("hiking in the Alps", filters={"user_id": "alice"})["results"]
    assert alice_hike not in {f["id"] for f in left}
    db.close()

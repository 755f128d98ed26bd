"""The quickstart: a handful of memories an agent might keep, and three recalls."""

from __future__ import annotations

from memex.core.models import Hit
from memex.service import Memex

EXAMPLES: list[dict[str, object]] = [
    {
        "content": "The user prefers tabs over spaces and a dark terminal theme.",
        "kind": "preference",
        "tags": ["editor"],
    },
    {
        "content": "We decided to store embeddings as float32 blobs next to each memory.",
        "kind": "decision",
        "tags": ["storage"],
    },
    {
        "content": "CI runs the test suite on every push to main; deploys happen on Fridays.",
        "kind": "fact",
        "tags": ["ops"],
    },
    {
        "content": "Bob asked to be paged only for production incidents, never for staging.",
        "kind": "preference",
        "tags": ["oncall"],
    },
    {
        "content": "The billing service times out when the invoice batch exceeds 10,000 rows.",
        "kind": "event",
        "tags": ["billing", "incident"],
    },
    {
        "content": "Use the staging database for load tests; production is off limits.",
        "kind": "decision",
        "tags": ["ops"],
    },
]
QUERIES = ["which editor settings does the user like?", "when do we deploy?", "billing timeout"]


def run_demo(mx: Memex) -> list[tuple[str, list[Hit]]]:
    """Store the examples once (in project ``quickstart``) and recall with each query."""
    demo = mx.scoped(project="quickstart")
    if demo.stats().memories == 0:
        demo.remember_many(EXAMPLES)
    return [(query, demo.recall(query, k=3)) for query in QUERIES]

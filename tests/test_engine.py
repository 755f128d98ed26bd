"""The engine's per-store slots: made once, and emptied by a purge when they cache."""

from __future__ import annotations

import threading
import time

import pytest

from memex import Memex


class Cache:
    """A shared item that caches: ``drop_caches`` must empty it."""

    def __init__(self) -> None:
        self.items = {"a": 1}

    def clear(self) -> None:
        self.items.clear()


class Counter:
    """A shared item that caches nothing: ``drop_caches`` leaves it alone."""

    def __init__(self) -> None:
        self.items = {"a": 1}


def test_a_shared_item_is_made_once_across_threads(mx: Memex) -> None:
    engine = mx._engine
    made: list[object] = []

    def factory() -> object:
        time.sleep(0.01)  # long enough for the other threads to ask meanwhile
        made.append(object())
        return made[-1]

    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(engine.shared("slot", factory)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and got == made * 8
    assert engine.shared("other", object) is not made[0]


@pytest.mark.parametrize(
    ("kind", "emptied"),
    [(Cache, True), (Counter, False)],
    ids=["has-clear", "no-clear"],
)
def test_drop_caches_clears_what_has_clear(mx: Memex, kind: type, emptied: bool) -> None:
    item = mx._engine.shared("item", kind)
    mx.embed_query("a query")
    assert mx._engine.embedding.query_cache
    mx._engine.drop_caches()
    assert not mx._engine.embedding.query_cache
    assert (item.items == {}) is emptied

"""Bad input at every API method is a ValidationError that leaves the store as it was, and
whatever the API accepts exports and imports back unchanged."""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import memex.core.ids as ids
from memex import (
    KNOWN_KINDS,
    ConfigError,
    FusionWeights,
    ImportFormatError,
    Memex,
    Memory,
    Settings,
    ValidationError,
)
from memex.core.build import UPDATE_FIELDS
from memex.core.records import IMPORT_FIELDS, to_line
from memex.core.validate import (
    INT64_MAX,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_SOURCE_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
)

LONE = "\udcff"
WEST, EAST = timezone(timedelta(hours=-5)), timezone(timedelta(hours=1))
PAST_END = "9999-12-31T23:00:00-05:00"
BEFORE_START = "0001-01-01T00:30:00+01:00"


def deep(levels: int) -> dict[str, Any]:
    """Metadata ``levels`` levels deep, the object itself being the first."""
    value: Any = 1
    for _ in range(levels - 1):
        value = [value]
    return {"k": value}


def many_tags(n: int) -> list[str]:
    return [f"tag{i}" for i in range(n)]


def snapshot(mx: Memex) -> tuple[list[dict[str, Any]], int]:
    """Every stored field of every memory (read statistics aside) and the version count."""
    rows = []
    for memory in mx.iter_all(include_deleted=True):
        row = memory.to_dict()
        del row["last_accessed_at"], row["access_count"]
        rows.append(row)
    return rows, mx.stats().versions


Call = Callable[[Memex, Memory], object]

BAD_CALLS: list[Any] = [
    # remember: every field
    ("content \\udcff", lambda mx, m: mx.remember(LONE), "content must be valid UTF-8"),
    ("content NUL", lambda mx, m: mx.remember("a\x00b"), "content must not contain NUL"),
    ("65 tags", lambda mx, m: mx.remember("x", tags=many_tags(65)), "at most 64 tags"),
    ("long tag", lambda mx, m: mx.remember("x", tags=["t" * 65]), "1-64 characters"),
    ("tag \\udcff", lambda mx, m: mx.remember("x", tags=[LONE]), "tags must be valid UTF-8"),
    ("tag NUL", lambda mx, m: mx.remember("x", tags=["a\x00b"]), "tags must not contain NUL"),
    ("metadata size", lambda mx, m: mx.remember("x", metadata={"k": "x" * MAX_METADATA_BYTES}),
     "over the limit of 16384"),
    ("metadata depth", lambda mx, m: mx.remember("x", metadata=deep(17)), "more than 16 levels"),
    ("metadata int", lambda mx, m: mx.remember("x", metadata={"n": 2**63}), "64 bits"),
    ("metadata deep int", lambda mx, m: mx.remember("x", metadata={"n": [{"m": -(2**63) - 1}]}),
     "64 bits"),
    ("metadata value \\udcff", lambda mx, m: mx.remember("x", metadata={"k": [LONE]}),
     "metadata strings must be valid UTF-8"),
    ("metadata key \\udcff", lambda mx, m: mx.remember("x", metadata={"k": {LONE: 1}}),
     "metadata keys must be valid UTF-8"),
    ("metadata NUL", lambda mx, m: mx.remember("x", metadata={"k": "a\x00"}), "NUL"),
    ("metadata NaN", lambda mx, m: mx.remember("x", metadata={"k": [math.nan]}), "NaN"),
    ("source long", lambda mx, m: mx.remember("x", source="s" * 513), "at most 512"),
    ("source int", lambda mx, m: mx.remember("x", source=5), "at most 512"),
    ("source \\udcff", lambda mx, m: mx.remember("x", source=LONE), "source must be valid UTF-8"),
    ("source NUL", lambda mx, m: mx.remember("x", source="a\x00"), "source must not contain NUL"),
    ("importance 10**400", lambda mx, m: mx.remember("x", importance=10**400), "importance"),
    ("importance -10**400", lambda mx, m: mx.remember("x", importance=-(10**400)), "importance"),
    ("importance nan", lambda mx, m: mx.remember("x", importance=math.nan), "importance"),
    ("importance bool", lambda mx, m: mx.remember("x", importance=True), "importance"),
    ("ttl 10**400", lambda mx, m: mx.remember("x", ttl=10**400), "ttl must be"),
    ("ttl inf", lambda mx, m: mx.remember("x", ttl=math.inf), "ttl must be"),
    ("ttl bool", lambda mx, m: mx.remember("x", ttl=True), "ttl must be"),
    ("created_at past 9999", lambda mx, m: mx.remember("x", created_at=PAST_END), "out of range"),
    ("created_at before 1", lambda mx, m: mx.remember("x", created_at=BEFORE_START),
     "out of range"),
    ("created_at object", lambda mx, m: mx.remember(
        "x", created_at=datetime(9999, 12, 31, 23, tzinfo=WEST)), "out of range"),
    ("created_at 10**400", lambda mx, m: mx.remember("x", created_at=10**400), "out of range"),
    ("expires_at past 9999", lambda mx, m: mx.remember("x", expires_at=PAST_END), "out of range"),
    ("valid_from before 1", lambda mx, m: mx.remember(
        "x", valid_from=datetime(1, 1, 1, 0, 30, tzinfo=EAST)), "out of range"),
    ("kind newline", lambda mx, m: mx.remember("x", kind="note\n"), "kind must be"),
    ("kind \\udcff", lambda mx, m: mx.remember("x", kind=LONE), "kind must be"),
    ("scope \\udcff", lambda mx, m: mx.remember("x", scope={"project": LONE}), "scope project"),
    ("scope newline", lambda mx, m: mx.remember("x", scope={"project": "p\n"}), "scope project"),
    ("supersedes \\udcff", lambda mx, m: mx.remember("x", supersedes=LONE), "supersedes"),
    # remember_many: all or nothing
    ("batch", lambda mx, m: mx.remember_many([{"content": "fine"}, {"content": "x",
     "metadata": deep(17)}]), "more than 16 levels"),
    ("batch mixed keys", lambda mx, m: mx.remember_many([{"content": "x", 1: 2, "z": 3}]),
     "unknown field"),
    ("batch None", lambda mx, m: mx.remember_many(None), "iterable of mappings"),
    ("batch one mapping", lambda mx, m: mx.remember_many({"content": "x"}), "iterable"),
    ("superseded_by UUID object", lambda mx, m: mx.remember_many(
        [{"content": "x", "superseded_by": uuid.UUID(m.id)}]), "superseded_by"),
    # update: the same rules as remember
    ("update source long", lambda mx, m: mx.update(m.id, source="s" * 10_000), "at most 512"),
    ("update source int", lambda mx, m: mx.update(m.id, source=5), "at most 512"),
    ("update source \\udcff", lambda mx, m: mx.update(m.id, source=LONE), "valid UTF-8"),
    ("update tags", lambda mx, m: mx.update(m.id, tags=many_tags(65)), "at most 64 tags"),
    ("update metadata", lambda mx, m: mx.update(m.id, metadata=deep(17)), "16 levels"),
    ("update importance", lambda mx, m: mx.update(m.id, importance=10**400), "importance"),
    ("update expires_at", lambda mx, m: mx.update(m.id, expires_at=PAST_END), "out of range"),
    ("update content", lambda mx, m: mx.update(m.id, content=LONE), "valid UTF-8"),
    ("update id \\udcff", lambda mx, m: mx.update(LONE, content="x"), "memory id must be valid"),
    ("update nothing", lambda mx, m: mx.update(m.id), "nothing to update"),
    # supersede
    ("supersede source", lambda mx, m: mx.supersede(m.id, "new", source=5), "at most 512"),
    ("supersede unknown", lambda mx, m: mx.supersede(m.id, "new", bogus=1), "cannot set 'bogus'"),
    ("supersede twice", lambda mx, m: mx.supersede(m.id, "new", supersedes=m.id), "cannot set"),
    ("supersede tags", lambda mx, m: mx.supersede(m.id, "new", tags=many_tags(65)), "64 tags"),
    # reads by id
    ("get \\udcff", lambda mx, m: mx.get(LONE), "memory id must be valid UTF-8"),
    ("history \\udcff", lambda mx, m: mx.history(LONE), "memory id must be valid UTF-8"),
    ("forget \\udcff", lambda mx, m: mx.forget("a" + LONE), "memory id must be valid UTF-8"),
    ("purge \\udcff", lambda mx, m: mx.purge(LONE), "memory id must be valid UTF-8"),
    # recall
    ("recall query \\udcff", lambda mx, m: mx.recall(LONE), "query must be valid UTF-8"),
    ("recall query NUL", lambda mx, m: mx.recall("a\x00"), "query must not contain NUL"),
    ("recall tags", lambda mx, m: mx.recall("x", tags=[LONE]), "tags must be valid UTF-8"),
    ("recall metadata", lambda mx, m: mx.recall("x", metadata={"k": LONE}), "valid UTF-8"),
    ("recall metadata int", lambda mx, m: mx.recall("x", metadata={"n": 2**64}), "64 bits"),
    ("recall since", lambda mx, m: mx.recall("x", since=PAST_END), "out of range"),
    ("recall as_of", lambda mx, m: mx.recall("x", as_of=BEFORE_START), "out of range"),
    ("recall kinds", lambda mx, m: mx.recall("x", kinds=5), "kinds must be"),
    ("recall weights", lambda mx, m: mx.recall("x", weights=FusionWeights(vector_weight=math.nan)),
     "vector_weight"),
    ("recall vector text", lambda mx, m: mx.recall("x", query_vector="abc"), "query_vector"),
    ("recall vector NaN", lambda mx, m: mx.recall(
        "x", query_vector=np.full(mx.embedder.dimensions, np.nan)), "finite numbers"),
    ("recall vector 1e300", lambda mx, m: mx.recall(
        "x", query_vector=[1e300] * mx.embedder.dimensions), "finite numbers"),
    # list and range
    ("list cursor deep", lambda mx, m: mx.list(cursor="W1tb" * 40), "malformed cursor"),
    ("list cursor int", lambda mx, m: mx.list(cursor=_cursor(2**63, 1)), "malformed cursor"),
    ("list cursor \\udcff", lambda mx, m: mx.list(cursor=LONE), "malformed cursor"),
    ("list metadata", lambda mx, m: mx.list(metadata={"n": -(2**63) - 1}), "64 bits"),
    ("list until", lambda mx, m: mx.list(until=PAST_END), "out of range"),
    ("range start", lambda mx, m: mx.range(PAST_END), "out of range"),
    ("range end", lambda mx, m: mx.range(None, BEFORE_START), "out of range"),
    ("range limit", lambda mx, m: mx.range(limit=True), "limit"),
    # context
    ("context query", lambda mx, m: mx.context(LONE), "query must be valid UTF-8"),
    ("context session", lambda mx, m: mx.context("x", session=LONE), "session must be valid"),
    ("context session NUL", lambda mx, m: mx.context("x", session="a\x00"), "NUL"),
    ("context session long", lambda mx, m: mx.context("x", session="s" * 257), "at most 256"),
    ("context time", lambda mx, m: mx.context("x", time_limit_ms=10**400), "time_limit_ms"),
    ("context share", lambda mx, m: mx.context("x", shares={"recall": 10**400}), "share"),
    ("context sections", lambda mx, m: mx.context("x", sections=[["recall"]]), "unknown section"),
    # scoped handles
    ("scoped \\udcff", lambda mx, m: mx.scoped(project=LONE), "scope project"),
]  # fmt: skip


def _cursor(created: int, seq: int) -> str:
    import base64

    raw = json.dumps([created, seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Memex, Memory]]:
    """One store for every bad call: each leaves it as it was (and checks that it does)."""
    path = tmp_path_factory.mktemp("bad") / "m.db"
    with Memex.open(path, settings=Settings()) as mx:
        m = mx.remember("the office is in Berlin", tags=["office"], metadata={"n": 1}, source="s")
        mx.remember("another memory", kind="fact")
        yield mx, m


@pytest.mark.parametrize(
    ("call", "message"), [pytest.param(c, msg, id=name) for name, c, msg in BAD_CALLS]
)
def test_bad_input_is_a_validation_error_and_changes_nothing(
    seeded: tuple[Memex, Memory], call: Call, message: str
) -> None:
    mx, m = seeded
    before = snapshot(mx)
    with pytest.raises(ValidationError, match=message) as info:
        call(mx, m)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200, str(info.value)
    assert snapshot(mx) == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("busy_timeout", math.nan),
        ("busy_timeout", math.inf),
        ("busy_timeout", 10**400),
        ("busy_timeout", "1" * 5000),
        ("episode_minutes", math.inf),
        ("vector_weight", math.nan),
        ("neighbour_radius", 10**30),
    ],
)
def test_settings_out_of_range_are_config_errors(tmp_path: Path, name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=name):
        Memex.open(tmp_path / "m.db", **{name: value})


def test_an_embedder_that_is_neither_name_nor_embedder_is_a_config_error(
    store_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="embedder must be"):
        Memex.open(store_path, embedder=5)  # type: ignore[arg-type]
    with Memex.open(store_path) as mx, pytest.raises(ConfigError, match="embedder must be"):
        mx.reindex(5)  # type: ignore[arg-type]


def test_a_store_path_with_nul_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NUL"):
        Memex.open(str(tmp_path / "m\x00.db"))


def _line(**fields: Any) -> str:
    return json.dumps({"content": "imported", **fields})


BAD_LINES: list[Any] = [
    ("deep JSON", "[" * 100_000, "nested too deeply"),
    ("deep metadata", '{"content": "x", "metadata": {"k": ' + "[" * 100_000 + "}}",
     "nested too deeply"),
    ("huge literal", '{"content": "x", "importance": 1' + "0" * 5000 + "}", "too many digits"),
    ("importance 10**400", '{"content": "x", "importance": 1' + "0" * 400 + "}", "importance"),
    ("metadata 2**63", _line(metadata={"n": 2**63}), "64 bits"),
    ("metadata 16 KiB", _line(metadata={"k": "x" * MAX_METADATA_BYTES}), "over the limit"),
    ("metadata 17 deep", _line(metadata=deep(MAX_METADATA_DEPTH + 1)), "16 levels"),
    ("65 tags", _line(tags=many_tags(MAX_TAGS + 1)), "at most 64 tags"),
    ("source escape", '{"content": "x", "source": "\\udcff"}', "source must be valid UTF-8"),
    ("tag NUL", '{"content": "x", "tags": ["a\\u0000"]}', "tags must not contain NUL"),
    ("content escape", '{"content": "\\ud800"}', "content must be valid UTF-8"),
    ("created_at", _line(created_at=PAST_END), "out of range"),
    ("valid_until", _line(valid_until=BEFORE_START), "out of range"),
    ("NaN", '{"content": "x", "importance": NaN}', "invalid JSON"),
    ("bytes", b'{"content": "\xff"}', "not valid UTF-8"),
    ("scope newline", _line(scope={"project": "p\n"}), "scope project"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"), [pytest.param(line, msg, id=name) for name, line, msg in BAD_LINES]
)
def test_bad_import_line_names_its_number_and_imports_nothing(
    seeded: tuple[Memex, Memory], line: Any, message: str
) -> None:
    mx, _ = seeded
    before = snapshot(mx)
    with pytest.raises(ImportFormatError, match=f"line 2: .*{message}") as info:
        mx.import_lines([_line(), line, _line()])
    assert info.value.line == 2
    assert snapshot(mx) == before


def test_import_of_one_string_is_refused(mx: Memex) -> None:
    with pytest.raises(ValidationError, match="iterable of lines"):
        mx.import_lines(_line())
    assert mx.stats().memories == 0


# -- update validates every field as remember does -------------------------------------------

FIELD_VALUES: list[tuple[str, Any]] = [
    ("content", LONE), ("content", ""), ("content", 5), ("content", "x" * 70_000),
    ("kind", "Bad"), ("kind", LONE), ("kind", 5),
    ("tags", many_tags(65)), ("tags", ["a,b"]), ("tags", "abc"), ("tags", [LONE]),
    ("metadata", deep(17)), ("metadata", {"n": 2**63}), ("metadata", []), ("metadata", {"k": LONE}),
    ("importance", 10**400), ("importance", math.nan), ("importance", "1"),
    ("expires_at", PAST_END), ("expires_at", "tomorrow"), ("expires_at", 10**400),
    ("source", "s" * 513), ("source", 5), ("source", LONE), ("source", "a\x00"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value"), FIELD_VALUES)
def test_update_refuses_a_field_with_remembers_message(
    seeded: tuple[Memex, Memory], field: str, value: Any
) -> None:
    mx, m = seeded
    args = {"content": "x", field: value}
    with pytest.raises(ValidationError) as by_remember:
        mx.remember(**args)
    with pytest.raises(ValidationError) as by_update:
        mx.update(m.id, **{field: value})
    assert str(by_update.value) == str(by_remember.value)


def test_every_updatable_field_is_in_the_table() -> None:
    assert {field for field, _ in FIELD_VALUES} == set(UPDATE_FIELDS)


def test_update_normalises_as_remember_does(mx: Memex) -> None:
    fields: dict[str, Any] = {
        "content": "  padded content ",
        "kind": "decision",
        "tags": [" a", "a ", "b"],
        "metadata": {"t": (1, 2), "nested": {"x": (True, None)}},
        "importance": 1,
        "expires_at": "2030-01-01T05:00:00+05:00",
        "source": "s" * MAX_SOURCE_CHARS,
    }
    made = mx.remember(**fields)
    other = mx.remember("plain")
    updated = mx.update(other.id, **fields)
    for name in UPDATE_FIELDS:
        assert getattr(updated, name) == getattr(made, name), name
    assert type(updated.importance) is float and updated.metadata["t"] == [1, 2]
    assert mx.get(other.id).metadata == made.metadata
    cleared = mx.update(other.id, source=None, expires_at=None)
    assert cleared.source is None and cleared.expires_at is None


# -- every export imports back ---------------------------------------------------------------

_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_tag_first = st.characters(exclude_categories=["Cs", "Zs"], exclude_characters="\x00,")
tags_st = st.builds(
    lambda first, rest: first + rest,
    _tag_first.filter(lambda c: not c.isspace()),
    st.text(_chars.filter(lambda c: c != ","), max_size=MAX_TAG_CHARS - 1),
)
full_tags = st.just([f"{i:02d}".ljust(MAX_TAG_CHARS, "é") for i in range(MAX_TAGS)])
int64 = st.integers(-(2**63), INT64_MAX)
json_leaf = st.one_of(
    st.none(), st.booleans(), int64, st.floats(allow_nan=False, allow_infinity=False),
    st.text(_chars, max_size=30),
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(_chars), inner, max_size=3),
    max_leaves=12,
)
meta_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", fullmatch=True)
edge_metadata = st.sampled_from(
    [
        {"k": "x" * (MAX_METADATA_BYTES - len('{"k":""}'))},
        deep(MAX_METADATA_DEPTH),
        {"max": INT64_MAX, "min": -(2**63), "tiny": 5e-324, "big": 1.7976931348623157e308},
    ]
)
metadata_st = st.one_of(st.dictionaries(meta_key, json_value, max_size=4), edge_metadata)
_times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
time_st = st.one_of(
    _times,
    st.sampled_from(
        [
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T18:59:59.999999-05:00",
            "1970-01-01T00:00:00Z",
            "1970-01-01T01:00:00.000001+01:00",
        ]
    ),
)
source_st = st.one_of(
    st.none(), st.text(_chars, max_size=40), st.just("ş" * MAX_SOURCE_CHARS), st.just("")
)
# What the API must refuse: any of these accepted would make an export the import refuses.
refused = {
    "content": st.sampled_from([LONE, "a\x00b"]),
    "tags": st.sampled_from([many_tags(MAX_TAGS + 1), ["t" * 65], [LONE], ["a\x00"]]),
    "metadata": st.sampled_from(
        [{"n": 2**63}, deep(MAX_METADATA_DEPTH + 1), {"k": [LONE]}, {"k": "x" * MAX_METADATA_BYTES}]
    ),
    "importance": st.sampled_from([10**400, math.nan, math.inf]),
    "expires_at": st.sampled_from([PAST_END, BEFORE_START, 10**400]),
    "source": st.sampled_from(["s" * (MAX_SOURCE_CHARS + 1), 5, LONE, "a\x00"]),
}


def one_refused(names: Iterable[str] = refused) -> st.SearchStrategy[dict[str, Any]]:
    """One of ``names`` set to a value the API must refuse."""
    return st.sampled_from(sorted(names)).flatmap(
        lambda name: st.fixed_dictionaries({name: refused[name]})
    )


fields_st = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from([*KNOWN_KINDS, "x" * 64]),
        "tags": st.one_of(st.lists(tags_st, max_size=6), full_tags),
        "metadata": metadata_st,
        "importance": st.one_of(st.floats(0, 1), st.sampled_from([0, 1, 5e-324])),
        "expires_at": time_st,
        "source": source_st,
        "scope": st.sampled_from([{"project": "p"}, {"user": "u" * 128, "agent": "a.b:c@d/e"}]),
    },
)
content_st = st.text(_chars, min_size=1, max_size=80).filter(str.strip)
update_st = st.fixed_dictionaries(
    {},
    optional={
        "content": content_st,
        "kind": st.sampled_from(KNOWN_KINDS),
        "tags": st.one_of(st.lists(tags_st, max_size=4), full_tags),
        "metadata": metadata_st,
        "importance": st.floats(0, 1),
        "expires_at": st.one_of(st.none(), time_st),
        "source": st.one_of(st.none(), source_st),
    },
)
index_st = st.integers(0, 5)
but_content = set(refused) - {"content"}
op_st = st.one_of(
    st.tuples(st.just("update"), index_st, update_st),
    st.tuples(st.just("update"), index_st, one_refused()),
    st.tuples(st.just("supersede"), index_st, st.tuples(content_st, fields_st)),
    st.tuples(st.just("supersede"), index_st, st.tuples(content_st, one_refused(but_content))),
    st.tuples(st.just("forget"), index_st, st.none()),
)
memory_st = st.tuples(
    st.one_of(content_st, refused["content"]),
    st.one_of(fields_st, one_refused(but_content)),
    st.one_of(st.none(), time_st),
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Memex, Memex]]:
    folder = tmp_path_factory.mktemp("export")
    saved = ids._last_ms, ids._last_rand  # a memory made in year 9999 moves the id clock
    with (
        Memex.open(folder / "from.db", settings=Settings()) as source,
        Memex.open(folder / "to.db", settings=Settings()) as target,
    ):
        yield source, target
    ids._last_ms, ids._last_rand = saved


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(memories=st.lists(memory_st, min_size=1, max_size=4), ops=st.lists(op_st, max_size=6))
def test_property_every_export_imports_back(
    stores: tuple[Memex, Memex],
    memories: list[tuple[str, dict[str, Any], Any]],
    ops: list[tuple[str, int, Any]],
) -> None:
    tenant = f"t{uuid.uuid4().hex}"  # a fresh tenant: as good as a fresh store
    source, target = (s.scoped(tenant=tenant) for s in stores)
    made: list[Memory] = []
    for content, fields, created in memories:
        with contextlib.suppress(ValidationError):  # refused values, or metadata past a limit
            made.append(source.remember(content, created_at=created, **fields))
    assume(made)
    for op, index, args in ops:
        target_id = made[index % len(made)].id
        try:
            if op == "update":
                if args:
                    source.update(target_id, **args)
            elif op == "supersede":
                content, fields = args
                made.append(source.supersede(target_id, content, **fields))
            else:
                source.forget(target_id)
        except ValidationError:  # refused values, or the rules of valid time
            pass
        except LookupError:  # forgotten or superseded meanwhile
            pass
    exported = [to_line(m) for m in source.iter_all(include_deleted=True)]
    text = "\n".join(exported) + "\n"  # as a file holds them
    imported = target.import_lines(text.split("\n"))
    assert len(imported) == len(exported)

    def kept(m: Memory) -> dict[str, Any]:
        row = {k: v for k, v in m.to_dict().items() if k in IMPORT_FIELDS}
        row["scope"] = {k: v for k, v in row["scope"].items() if k != "tenant"}
        return row

    before = {m.id: kept(m) for m in source.iter_all(include_deleted=True)}
    after = {m.id: kept(m) for m in target.iter_all(include_deleted=True)}
    assert after == before

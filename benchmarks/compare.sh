#!/usr/bin/env bash
# memex before and after a change: the same benchmark scripts run against two source trees,
# back to back on one machine, so every comparison is a same-run ratio.
#
#   git worktree add ../memex-base <rev>                     # the code before the change
#   BASE=../memex-base bash benchmarks/compare.sh            # ~25-35 min on 2 cores
#   BASE=../memex-base bash benchmarks/compare.sh --smoke    # every step at <= 5K, ~4 min
#
# Both trees are measured by THIS tree's scripts ($BENCH, default benchmarks/ beside this
# file); PYTHONPATH=<tree> picks which memex is imported, and every JSON records it
# (environment.memex_source; the summary flags a mismatch). Everything runs from $OUT, a
# directory holding no memex package, so no checkout in the working directory shadows
# PYTHONPATH. Variables: BASE (required), NEW (this tree), OUT (.bench/compare), DATA
# (../shared/data/locomo-dev), PY (.venv/bin/python), PEERS_PY (.bench/peers-venv, see
# docs/benchmarks.md), STEPS (locomo,context,latency,peers), ROUNDS (5).
#
# Steps:
#   locomo   locomo-{base,new}               locomo.py, default configuration
#   context  context-ab-{base,new}           context.py --parts a,b
#            context-c-{base,new}            context.py --parts c at 100K (each builds its
#                                            store: same seed, same content)
#   latency  latency-build-{base,new}        latency.py --sizes 100000, building (base's
#                                            store kept in $OUT/latency-store)
#            latency-{base,new}-1..ROUNDS    latency.py --reuse on fresh copies of that one
#                                            store, base and new in turn, ROUNDS times; the
#                                            summary gives each figure's median new/base
#                                            ratio over the rounds (the machine's speed
#                                            drifts between runs; adjacent runs share it)
#   peers    peers-speed-new                 peers.py --parts speed --systems memex,chromadb
#                                            at 100K (new only)
# Before each step it waits (at most QUIET_WAIT s, default 90) for the 1-minute load to fall
# below QUIET_LOAD (default 1.0). Each step's load and duration go to $OUT/compare-times.tsv,
# the comparison (with a check that LoCoMo rankings and context coverage are identical) to
# $OUT/compare-summary.md, each run's output to $OUT/<step>.{json,md,log}.
set -uo pipefail

SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
HERE=$(cd "$(dirname "$0")" && pwd)
NEW=${NEW:-$(dirname "$HERE")}
NEW=$(cd "$NEW" && pwd)
BASE=${BASE:?set BASE=<path of the source tree before the change>}
BASE=$(cd "$BASE" && pwd)
BENCH=${BENCH:-$HERE}
OUT=${OUT:-$NEW/.bench/compare}
DATA=${DATA:-$NEW/../shared/data/locomo-dev}
PY=${PY:-$NEW/.venv/bin/python}
PEERS_PY=${PEERS_PY:-$NEW/.bench/peers-venv/bin/python}
ROUNDS=${ROUNDS:-5}
STEPS=${STEPS:-locomo,context,latency,peers}
QUIET_LOAD=${QUIET_LOAD:-1.0}
QUIET_WAIT=${QUIET_WAIT:-90}

SIZE=100000
CONTEXT_EXTRA=()
PEERS_EXTRA=()
if (( SMOKE )); then
    OUT=$OUT/smoke
    SIZE=5000
    CONTEXT_EXTRA=(--quick)
    PEERS_EXTRA=(--queries 20)
    QUIET_WAIT=0
fi
mkdir -p "$OUT"
TIMES=$OUT/compare-times.tsv
STORE=$OUT/latency-store
FAILED=()

die() { echo "compare: $*" >&2; exit 2; }
has_step() { [[ ",$STEPS," == *",$1,"* ]]; }

# -- preflight: trees, scripts, interpreters, schema -----------------------------------------
for tree in "$BASE" "$NEW"; do
    [[ -f $tree/memex/__init__.py ]] || die "$tree is not a memex source tree"
done
grep -q -- '--reuse' "$BENCH/latency.py" || die "$BENCH/latency.py has no --reuse"
grep -q -- '--systems' "$BENCH/peers.py" || die "$BENCH/peers.py has no --systems"
grep -q 'def context_state' "$BENCH/context.py" || die "$BENCH/context.py cannot run against the base tree"
[[ -d $DATA ]] || die "no LoCoMo data at $DATA"
cd "$OUT" || die "cannot enter $OUT"
[[ -e $OUT/memex ]] && die "$OUT/memex exists and would shadow PYTHONPATH"
check_import() {  # python tree
    local got
    got=$(PYTHONPATH=$2 "$1" -c 'import memex; print(memex.__file__)') || die "$1 cannot import memex from $2"
    [[ $got == "$2/memex/__init__.py" ]] || die "PYTHONPATH=$2 $1 imports $got"
}
check_import "$PY" "$BASE"
check_import "$PY" "$NEW"
has_step peers && check_import "$PEERS_PY" "$NEW"
if ! diff -q <(ls "$BASE/memex/storage/sqlite/migrations") <(ls "$NEW/memex/storage/sqlite/migrations") >/dev/null; then
    echo "compare: WARNING: base and new have different migrations; latency --reuse would migrate the copy" >&2
fi
{
    echo "base: $BASE $(git -C "$BASE" rev-parse --short HEAD 2>/dev/null) ($(git -C "$BASE" status --porcelain 2>/dev/null | wc -l) changed files)"
    echo "new:  $NEW $(git -C "$NEW" rev-parse --short HEAD 2>/dev/null) ($(git -C "$NEW" status --porcelain 2>/dev/null | wc -l) changed files)"
    echo "scripts: $BENCH ($(git -C "$BENCH" rev-parse --short HEAD 2>/dev/null))"
} | tee "$OUT/compare-trees.txt"
printf 'step\tstart\tload_before\tseconds\tload_after\texit\n' > "$TIMES"

# -- running one step ------------------------------------------------------------------------
wait_quiet() {
    local waited=0 load
    while :; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$load" -v q="$QUIET_LOAD" 'BEGIN { exit !(l < q) }' || (( waited >= QUIET_WAIT )); then
            echo "$load"
            return
        fi
        sleep 10
        waited=$((waited + 10))
    done
}

run() {  # name tree python script args...: writes $OUT/name.{json,md,log}
    local name=$1 tree=$2 python=$3 script=$4 load_before start t0 rc
    shift 4
    load_before=$(wait_quiet)
    start=$(date +%H:%M:%S)
    echo "[$start] $name (load $load_before): PYTHONPATH=$tree $python $BENCH/$script $*" >&2
    t0=$(date +%s.%N)
    PYTHONPATH=$tree "$python" "$BENCH/$script" "$@" --markdown --json "$OUT/$name.json" \
        > "$OUT/$name.md" 2> "$OUT/$name.log"
    rc=$?
    local seconds
    seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$start" "$load_before" "$seconds" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$rc" >> "$TIMES"
    echo "           $name: ${seconds} s, exit $rc" >&2
    if (( rc != 0 )); then
        FAILED+=("$name")
        tail -5 "$OUT/$name.log" >&2
    fi
}

# -- the steps -------------------------------------------------------------------------------
COMMON=(--data "$DATA")
if has_step locomo; then
    run locomo-base "$BASE" "$PY" locomo.py "${COMMON[@]}"
    run locomo-new "$NEW" "$PY" locomo.py "${COMMON[@]}"
fi
if has_step context; then
    run context-ab-base "$BASE" "$PY" context.py "${COMMON[@]}" --parts a,b "${CONTEXT_EXTRA[@]}"
    run context-ab-new "$NEW" "$PY" context.py "${COMMON[@]}" --parts a,b "${CONTEXT_EXTRA[@]}"
    run context-c-base "$BASE" "$PY" context.py "${COMMON[@]}" --parts c --size "$SIZE" "${CONTEXT_EXTRA[@]}"
    run context-c-new "$NEW" "$PY" context.py "${COMMON[@]}" --parts c --size "$SIZE" "${CONTEXT_EXTRA[@]}"
fi
if has_step latency; then
    rm -rf "$STORE"
    run latency-build-base "$BASE" "$PY" latency.py "${COMMON[@]}" --sizes "$SIZE" --workdir "$STORE" --keep
    run latency-build-new "$NEW" "$PY" latency.py "${COMMON[@]}" --sizes "$SIZE"
    if [[ -f $STORE/latency-$SIZE.db ]]; then
        for (( round = 1; round <= ROUNDS; round++ )); do
            run "latency-base-$round" "$BASE" "$PY" latency.py "${COMMON[@]}" --sizes "$SIZE" --reuse "$STORE"
            run "latency-new-$round" "$NEW" "$PY" latency.py "${COMMON[@]}" --sizes "$SIZE" --reuse "$STORE"
        done
    else
        FAILED+=("latency-reuse (no kept store)")
    fi
fi
if has_step peers; then
    run peers-speed-new "$NEW" "$PEERS_PY" peers.py "${COMMON[@]}" --parts speed \
        --systems memex,chromadb --size "$SIZE" "${PEERS_EXTRA[@]}"
fi

# -- summary ---------------------------------------------------------------------------------
python3 - "$OUT" "$BASE" "$NEW" "$ROUNDS" > "$OUT/compare-summary.md" <<'PY'
import json, statistics, sys
from pathlib import Path

out, base, new, rounds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])


def load(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def source(report):
    env = report.get("environment", {})
    return (env.get("memex_source") or {}).get("path")


def table(title, rows, names):
    print(f"\n### {title}\n")
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, cells in rows:
        print(f"| {label} | " + " | ".join(cells) + " |")


print("# Base vs new\n")
print(f"base `{base}`, new `{new}`. Times in ms unless stated.")
for name, want in [
    *((f"{s}-base", base) for s in ("locomo", "context-ab", "context-c", "latency-build")),
    *((f"latency-base-{i}", base) for i in range(1, rounds + 1)),
    *((f"{s}-new", new) for s in ("locomo", "context-ab", "context-c", "latency-build")),
    *((f"latency-new-{i}", new) for i in range(1, rounds + 1)),
    ("peers-speed-new", new),
]:
    r = load(name)
    if r and source(r) != want:
        print(f"\n**{name}.json measured {source(r)}, not {want}.**")

lb, ln = load("locomo-base"), load("locomo-new")
if lb and ln:
    rows = []
    for system in ("memex hybrid", "memex lexical", "memex vector"):
        a, b = lb["systems"][system], ln["systems"][system]
        rows += [
            (f"{system} R@10", [f"{a['r10']:.3f}", f"{b['r10']:.3f}"]),
            (f"{system} MRR@50", [f"{a['mrr']:.3f}", f"{b['mrr']:.3f}"]),
            (f"{system} search p50", [f"{a['search_ms_p50']:.2f}", f"{b['search_ms_p50']:.2f}"]),
        ]
    table("LoCoMo (default configuration)", rows, ["base", "new"])
    for system in ("memex hybrid", "memex lexical", "memex vector"):
        top = sum(x["top10"][system] != y["top10"][system] for x, y in zip(lb["questions"], ln["questions"]))
        first = sum(
            x["first_hit_rank"][system] != y["first_hit_rank"][system]
            for x, y in zip(lb["questions"], ln["questions"])
        )
        verdict = "identical" if top == first == 0 else "**CHANGED**"
        print(f"\n{system}: top 10 differs on {top} of {len(lb['questions'])} questions, "
              f"first-evidence rank on {first}: {verdict}.")

ab, an = load("context-ab-base"), load("context-ab-new")
if ab and an:
    rows = []
    for budget in ab["coverage"]["by_budget"]:
        a, b = ab["coverage"]["by_budget"][budget], an["coverage"]["by_budget"][budget]
        rows += [
            (f"(a) coverage at {budget}", [f"{a['context']:.3f}", f"{b['context']:.3f}"]),
            (f"(a) context p50 at {budget}", [f"{a['context_ms_p50']:.1f}", f"{b['context_ms_p50']:.1f}"]),
        ]
    sa, sb = ab["sessions"]["overall"], an["sessions"]["overall"]
    rows.append(("(b) prefix reused", [f"{sa['reuse_share']:.3f}", f"{sb['reuse_share']:.3f}"]))
    rows.append(("(b) section-cache hits", [f"{sa['cache_hit_rate']:.0%}", f"{sb['cache_hit_rate']:.0%}"]))
    table("Context (a), (b)", rows, ["base", "new"])
    rows_a, rows_b = ab["coverage"]["rows"], an["coverage"]["rows"]
    differ = sum(x["coverage"] != y["coverage"] or x["tokens"] != y["tokens"] for x, y in zip(rows_a, rows_b))
    print(f"\n(a): coverage or tokens differ on {differ} of {len(rows_a)} calls.")

cb, cn = load("context-c-base"), load("context-c-new")
if cb and cn:
    rows = []
    for key, label in (("cold_new_handle", "cold, new handle"), ("cold", "cold"), ("warm", "warm")):
        a, b = cb["timing"][key], cn["timing"][key]
        rows.append((f"(c) {label} p50 / p99", [f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f}", f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f}"]))
    rows.append(("(c) build (s)", [f"{cb['timing']['ingest_seconds']:.0f}", f"{cn['timing']['ingest_seconds']:.0f}"]))
    table(f"Context (c) at {cb['timing']['memories']:,}", rows, ["base", "new"])

names = ["latency-build-base", "latency-build-new", "latency-base-1", "latency-new-1"]
runs = [(n, load(n)) for n in names]
runs = [(n, r["sizes"][0]) for n, r in runs if r]
if runs:
    def pair(d):
        return f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f}"
    def cell(r, fn):
        try:
            return fn(r)
        except KeyError:
            return "–"
    spec = [
        ("remember_many (memories/s)", lambda r: f"{r['ingest']['remember_many_per_s']:,.0f}"),
        ("store cost on top of embedding", lambda r: f"+{r['ingest']['store_overhead_pct']:.0f}%"),
        ("get p50 / p99 (µs)", lambda r: f"{r['get']['get']['p50_ms'] * 1000:.0f} / {r['get']['get']['p99_ms'] * 1000:.0f}"),
        ("get ÷ raw, p50", lambda r: f"{r['get']['get_over_raw_p50']:.2f}×"),
        ("first recall", lambda r: f"{r['first_recall_ms']:,.1f}"),
        ("hybrid incl. embedding p50 / p99", lambda r: pair(r["recall"]["hybrid_with_query_embedding"])),
        ("hybrid query_vector= p50 / p99", lambda r: pair(r["recall"]["hybrid_query_vector"])),
        ("lexical p50 / p99", lambda r: pair(r["recall"]["lexical"])),
        ("vector p50 / p99", lambda r: pair(r["recall"]["vector_query_vector"])),
        ("range 1000 p50", lambda r: f"{r['range_1000']['p50_ms']:.1f}"),
        ("filtered list p50", lambda r: f"{r['list_filtered_50']['p50_ms']:.2f}"),
        ("RSS warm / peak (MB)", lambda r: f"{r['memory']['VmRSS'] / 1e6:,.0f} / {r['memory']['VmHWM'] / 1e6:,.0f}"),
        ("new process open + first recall", lambda r: f"{(r['new_process']['open_s'] + r['new_process']['first_recall_s']) * 1000:,.0f}"),
        ("new process hybrid p50", lambda r: f"{r['new_process']['recall_p50_s'] * 1000:.2f}"),
    ]
    rows = [(label, [cell(r, fn) for _, r in runs]) for label, fn in spec]
    table(f"Latency at {runs[0][1]['memories']:,} (builds, then the first round on copies of one store)", rows, [n.removeprefix("latency-") for n, _ in runs])

    pairs = [(load(f"latency-base-{i}"), load(f"latency-new-{i}")) for i in range(1, rounds + 1)]
    pairs = [(a["sizes"][0], b["sizes"][0]) for a, b in pairs if a and b]
    ratio_spec = [
        ("get p50", lambda r: r["get"]["get"]["p50_ms"]),
        ("hybrid incl. embedding p50", lambda r: r["recall"]["hybrid_with_query_embedding"]["p50_ms"]),
        ("hybrid query_vector= p50", lambda r: r["recall"]["hybrid_query_vector"]["p50_ms"]),
        ("hybrid query_vector= p99", lambda r: r["recall"]["hybrid_query_vector"]["p99_ms"]),
        ("lexical p50", lambda r: r["recall"]["lexical"]["p50_ms"]),
        ("vector p50", lambda r: r["recall"]["vector_query_vector"]["p50_ms"]),
        ("range 1000 p50", lambda r: r["range_1000"]["p50_ms"]),
        ("filtered list p50", lambda r: r["list_filtered_50"]["p50_ms"]),
        ("new process hybrid p50", lambda r: r["new_process"]["recall_p50_s"] * 1000),
    ]
    if pairs:
        print(f"\n### Latency, new ÷ base over {len(pairs)} rounds (each round: base, then new)\n")
        print("| | median | each round | base (median ms) | new (median ms) |")
        print("|---|---:|---|---:|---:|")
        for label, fn in ratio_spec:
            each = [fn(b) / fn(a) for a, b in pairs]
            print(f"| {label} | {statistics.median(each):.2f} | "
                  + " ".join(f"{x:.2f}" for x in each)
                  + f" | {statistics.median(fn(a) for a, _ in pairs):.3f}"
                  + f" | {statistics.median(fn(b) for _, b in pairs):.3f} |")

p = load("peers-speed-new")
if p:
    s = p["speed"]
    hyb, vec, ch = s["search"]["memex_hybrid"], s["search"]["memex_vector"], s["search"]["chroma"]
    ing = s["ingest"]
    print(f"\n### Peers speed at {s['memories']:,} (new)\n")
    print(f"ingest memex {ing['memex_per_s']:,.0f}/s, chromadb {ing['chroma_per_s']:,.0f}/s "
          f"({ing['memex_per_s'] / ing['chroma_per_s']:.2f}×); search p50 / p99 memex hybrid "
          f"{hyb['p50_ms']:.2f} / {hyb['p99_ms']:.2f}, memex vector {vec['p50_ms']:.2f} / "
          f"{vec['p99_ms']:.2f}, chromadb {ch['p50_ms']:.2f} / {ch['p99_ms']:.2f} "
          f"(memex hybrid {ch['p50_ms'] / hyb['p50_ms']:.2f}× chromadb's speed at p50, vector "
          f"{ch['p50_ms'] / vec['p50_ms']:.2f}×).")
PY

echo >&2
column -t -s $'\t' "$TIMES" >&2
echo "results: $OUT/*.{json,md,log}; summary: $OUT/compare-summary.md; kept store: $STORE" >&2
if (( ${#FAILED[@]} )); then
    echo "compare: failed: ${FAILED[*]}" >&2
    exit 1
fi

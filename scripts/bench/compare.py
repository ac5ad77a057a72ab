"""Side by side: one benchmark run for two commits in one session, alternating, so both see the same
machine (the re-cut's "within noise of before" is measured this way, not against old numbers).

    scripts/bench/run compare REF snapshot --small [--rounds 2]
    scripts/bench/run compare REF cdc --small --only lag
    scripts/bench/run compare REF pg-cdc --small [--rates '']
    scripts/bench/run compare REF pg-snapshot --small

For pg-cdc and pg-snapshot, compare the ratios (ratio_to_native, ratio_to_pgcopydb: the
baseline measured in the same run) rather than the raw rates, which follow the machine's load.

REF (a commit, branch or tag) is checked out into a worktree under $TMPDIR with its own .venv (its
`scripts/bootstrap`); the working tree's benchmark runs from this checkout. Rounds alternate
REF, HEAD, HEAD, REF, ... so a machine that slows down over time does not favour either side. Each
metric is the median of its rounds; noise is the larger relative spread (max - min over median)
of the two sides' rounds; a change is reported as within noise when |HEAD/REF - 1| is at most that
spread (and at least 5 %, the floor below which two rounds cannot tell anything apart).
Writes bench-results/compare-<benchmark>.json beside the per-round results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOISE_FLOOR = 0.05

# Metric names by how they read: more is better, or less is better. Ratios are against a baseline
# measured in the same benchmark run (raw driver speed, the server's own decode, the target's
# ceiling), so they are the least noisy figures to compare.
HIGHER = (
    "_per_s",
    "_per_s_from_first",
    "ratio_to_raw",
    "ratio_to_server",
    "ratio_to_ceiling",
    "ratio_to_native",
    "ratio_to_native_from_first",
    "ratio_to_pgcopydb",
    "applied_rate",
)
LOWER = ("cpu_seconds", "cpu_s_per_gb", "p95_ms", "p99_ms", "peak_rss_mb")
# Fields that name a row of a result list (its case, its round within one run) rather than
# measure it.
LABELS = ("case", "round", "parallel", "size", "target_rate")
# Benchmarks whose script is not bench_<name>.py (with the options that select them); each
# writes <name>*.json.
SCRIPTS = {
    "mysql-snapshot": ("bench_snapshot.py", "--source", "mysql"),
    "mysql-cdc": ("bench_mysql_lag.py",),
    "pg-snapshot": ("bench_pg_snapshot.py",),
    "pg-cdc": ("bench_pg_cdc.py",),
}
# A REF from before bench_snapshot.py took --source has the MySQL snapshot benchmark on its own.
BEFORE_SOURCE_OPTION = {"mysql-snapshot": "bench_mysql_snapshot.py"}


def _flatten(value: Any, path: str, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        label = "/".join(f"{value[k]}" for k in LABELS if k in value)
        base = f"{path}[{label}]" if label else path
        for key, item in value.items():
            if key not in LABELS:
                _flatten(item, f"{base}.{key}" if base else key, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _flatten(item, path if isinstance(item, dict) else f"{path}[{i}]", out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        name = path.rsplit(".", 1)[-1]
        if name.endswith(HIGHER) or name.endswith(LOWER):
            out[path] = float(value)


def _metrics(result: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    data = json.loads(result.read_text())
    if data.get("benchmark") == "pg-cdc":
        _native_ratios(data)
    _flatten(data, "", out)
    return out


def _native_ratios(data: dict[str, Any]) -> None:
    """pg-cdc's ratios to native, for a REF whose benchmark did not write them yet."""
    cases = {r.get("case"): r for r in data.get("results", [])}
    migrator, native = cases.get("migrator"), cases.get("native")
    if migrator is None or native is None:
        return
    for suffix in ("", "_from_first"):
        rate = native.get(f"changes_per_s{suffix}")
        if rate and f"ratio_to_native{suffix}" not in migrator:
            migrator[f"ratio_to_native{suffix}"] = round(migrator[f"changes_per_s{suffix}"] / rate, 3)


def _worktree(ref: str) -> Path:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"migrator-bench-{commit[:12]}"
    if not (tree / ".git").exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True)
    subprocess.run([str(tree / "scripts" / "bootstrap")], check=True, stdout=sys.stderr)
    return tree


def _round(tree: Path, benchmark: str, args: list[str], out: Path) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    name, *options = SCRIPTS.get(benchmark, (f"bench_{benchmark}.py",))
    script = tree / "scripts" / "bench" / name
    older = tree / "scripts" / "bench" / BEFORE_SOURCE_OPTION.get(benchmark, "-")
    if older.is_file():
        script, options = older, []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), str(script), *options, *args, "--out", str(out)],
        check=True,
        env=env,
    )
    (result,) = sorted(out.glob(f"{benchmark}*.json"))
    return _metrics(result)


def _spread(values: list[float]) -> float:
    middle = statistics.median(values)
    return (max(values) - min(values)) / abs(middle) if middle else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", help="the commit to compare with (e.g. the commit before a re-cut)")
    parser.add_argument("benchmark", choices=("snapshot", "cdc", "verify", *SCRIPTS))
    parser.add_argument("--rounds", type=int, default=2, help="runs per side (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args, passed = parser.parse_known_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    trees = {"ref": _worktree(args.ref), "head": ROOT}
    order = [("ref", "head") if i % 2 == 0 else ("head", "ref") for i in range(args.rounds)]
    seen: dict[str, list[dict[str, float]]] = {"ref": [], "head": []}
    for i, pair in enumerate(order):
        for side in pair:
            print(f"round {i + 1}/{args.rounds}: {side} ({trees[side]})", file=sys.stderr, flush=True)
            out = args.out / f"compare-{args.benchmark}" / f"{side}-{i + 1}"
            seen[side].append(_round(trees[side], args.benchmark, passed, out))

    rows: list[dict[str, Any]] = []
    for name in sorted(set(seen["ref"][0]) & set(seen["head"][0])):
        ref = [m[name] for m in seen["ref"] if name in m]
        head = [m[name] for m in seen["head"] if name in m]
        noise = max(_spread(ref), _spread(head), NOISE_FLOOR)
        before, after = statistics.median(ref), statistics.median(head)
        change = after / before - 1 if before else 0.0
        better = change > 0 if name.rsplit(".", 1)[-1].endswith(HIGHER) else change < 0
        verdict = "within noise" if abs(change) <= noise else ("better" if better else "WORSE")
        rows.append(
            {
                "metric": name,
                "ref": round(before, 3),
                "head": round(after, 3),
                "head_over_ref": round(after / before, 3) if before else None,
                "noise": round(noise, 3),
                "verdict": verdict,
            }
        )
    report = {
        "benchmark": args.benchmark,
        "ref": args.ref,
        "rounds": args.rounds,
        "args": passed,
        "metrics": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"compare-{args.benchmark}.json"
    target.write_text(json.dumps(report, indent=2))
    width = max((len(r["metric"]) for r in rows), default=6)
    print(f"\n{'metric':<{width}} {'ref':>10} {'head':>10} {'head/ref':>8} {'noise':>6}  verdict")
    for r in rows:
        ratio = "" if r["head_over_ref"] is None else f"{r['head_over_ref']:.3f}"
        print(
            f"{r['metric']:<{width}} {r['ref']:>10,.3f} {r['head']:>10,.3f} {ratio:>8} {r['noise']:>6.1%}  {r['verdict']}"
        )
    print(f"\nwritten to {target}")
    if any(r["verdict"] == "WORSE" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()

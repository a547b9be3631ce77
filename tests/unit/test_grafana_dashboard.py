"""The Grafana dashboard charts only series the code publishes, and every published series."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def published() -> set[str]:
    names = set()
    for path in ("luma_ray/runtime/metrics.py", "luma_ray/workers/metrics.py"):
        names |= set(re.findall(r'"(luma_[a-z_]+)"', (ROOT / path).read_text()))
    return names


def test_dashboard_queries_match_the_published_series() -> None:
    dashboard = json.loads((ROOT / "deployments" / "grafana-luma.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    charted = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for expr in exprs
        for name in re.findall(r"ray_(luma_[a-z_]+)", expr)
    }
    assert charted == published()
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])

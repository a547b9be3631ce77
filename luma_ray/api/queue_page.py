"""The live queue page: per tier and model the depth, the oldest wait against the SLO and the
dispatch rate, and per model the workers and their versions. It refreshes itself.

Who calls this: ``admin.add_routes`` registers :func:`add_routes`. The page itself holds no data
and needs no key; its script reads a key from the URL fragment (``#key=...``, which browsers
never send to a server, so it stays out of access logs) and polls ``GET /v1/admin/queue-view``
with it every ``REFRESH_S`` seconds. Give it a read-only key
(``luma-ray keys create --tenant ops --tier free --scope queues:read``), not an admin key: a
URL travels (history, bookmarks, screen shares) and an admin key can also promote and roll
back models.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from luma_ray.api.context import ports, queue_reader
from luma_ray.scheduler.protocol import QueuePage, QueueReport

REFRESH_S = 2

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>luma_ray queues</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
.late { color: #b00; font-weight: 600; }
#status { color: #666; }
</style></head>
<body>
<h1>luma_ray queues</h1>
<p id="status">loading...</p>
<p id="howto">Open this page as <code>/admin/queues#key=KEY</code> with a read-only key
(scope <code>queues:read</code>): <code>luma-ray keys create --tenant ops --tier free
--scope queues:read</code>. Not an admin key: this URL may travel, and an admin key can also
promote and roll back models.</p>
<h2>Queues</h2>
<table id="queues"><thead><tr><th>tier</th><th>model</th><th>queued</th>
<th>oldest wait (s)</th><th>SLO (s)</th><th>SLO used</th><th>dispatched / min</th></tr></thead>
<tbody></tbody></table>
<h2>Pools</h2>
<table id="pools"><thead><tr><th>pool</th><th>model</th><th>replicas</th><th>versions</th>
</tr></thead>
<tbody></tbody></table>
<script>
const key = new URLSearchParams(location.hash.slice(1)).get("key") || "";
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map(cells => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}
async function refresh() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("/v1/admin/queue-view", {headers: {Authorization: "Bearer " + key}});
    const v = await r.json();
    if (!r.ok) { status.textContent = "error: " + (v.detail || r.status); return; }
    fill("queues", v.queues.map(q => [cell(q.tier), cell(q.model), cell(q.depth),
      cell(q.oldest_wait_s.toFixed(1), q.slo_used > 1 ? "late" : ""), cell(q.slo_s),
      cell((100 * q.slo_used).toFixed(1) + "%", q.slo_used > 1 ? "late" : ""),
      cell(q.dispatch_per_min.toFixed(1))]));
    fill("pools", v.pools.map(p => [cell(p.pool), cell(p.model), cell(p.workers),
      cell(Object.entries(p.versions).map(([ver, n]) => ver + " x" + n).join(", "))]));
    status.textContent = "updated " + new Date(v.at_s * 1000).toISOString();
  } catch (e) {
    status.textContent = "error: " + e;
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
</script></body></html>
""".replace("REFRESH_MS", str(REFRESH_S * 1000))


def add_routes(app: FastAPI) -> None:
    """``GET /admin/queues`` (the page) and ``GET /v1/admin/queue-view`` (its data, for a
    ``queues:read`` or admin key)."""

    @app.get("/admin/queues", response_class=HTMLResponse, include_in_schema=False)
    async def queue_page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    @app.get("/v1/admin/queue-view", dependencies=[Depends(queue_reader)])
    async def queue_view(request: Request) -> QueueReport:
        return await ports(request).scheduler.call(QueuePage())

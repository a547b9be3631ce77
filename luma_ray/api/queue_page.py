"""The live queue page: per tier and model the depth, the oldest wait against the SLO and the
dispatch rate, and per model the workers and their versions; the last hour as charts (per tier
the depth, the oldest wait against the SLO and the dispatches per minute; per pool the busy and
idle workers), the top tenants per tier and the recent failures. It refreshes itself.

One static page, no build step and nothing fetched but its data: the charts are inline SVG drawn
by the page's own script, so it works offline. Every name and message goes in as text
(``textContent``), never as markup.

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
.charts { display: flex; flex-wrap: wrap; gap: 1em; margin-bottom: 1.5em; }
figure { margin: 0; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg { border: 1px solid #ddd; background: #fcfcfc; }
svg text { font-size: 10px; fill: #555; }
#tenants th, #tenants td, #failures th, #failures td { text-align: left; }
td.message { max-width: 40em; }
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
<h2>Last hour</h2>
<div class="charts">
<figure id="chart-depth"><figcaption>Queued jobs per tier</figcaption><svg></svg></figure>
<figure id="chart-wait"><figcaption>Oldest wait per tier, % of its SLO</figcaption><svg></svg>
</figure>
<figure id="chart-dispatch"><figcaption>Dispatches per minute per tier</figcaption><svg></svg>
</figure>
<figure id="chart-workers"><figcaption>Workers per pool: busy (solid), idle (dashed)
</figcaption><svg></svg></figure>
</div>
<h2>Top tenants</h2>
<table id="tenants"><thead><tr><th>tier</th><th>by</th><th>tenant</th><th>queued</th>
<th>leased</th></tr></thead><tbody></tbody></table>
<h2>Recent failures</h2>
<table id="failures"><thead><tr><th>time</th><th>tier</th><th>tenant</th><th>model</th>
<th>job</th><th>code</th><th>reason</th><th>then</th></tr></thead><tbody></tbody></table>
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
const NS = "http://www.w3.org/2000/svg", W = 460, H = 170, L = 40, R = 10, T = 10, B = 22;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];
function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
// series: [{name, points: [[t, value], ...], dashed, color}]; the x axis is the last hour.
function chart(id, series, now, unit, ref) {
  const svg = document.querySelector("#" + id + " svg");
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  const start = now - 3600;
  let top = ref || 1;
  for (const s of series) for (const [, v] of s.points) top = Math.max(top, v);
  const x = t => (L + Math.max(0, Math.min(1, (t - start) / 3600)) * (W - L - R)).toFixed(1);
  const y = v => (H - B - v / top * (H - B - T)).toFixed(1);
  const kids = [
    el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}),
    el("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}),
    el("text", {x: L, y: H - 6}, "-60 min"),
    el("text", {x: W - R, y: H - 6, "text-anchor": "end"}, "now"),
    el("text", {x: L - 4, y: T + 8, "text-anchor": "end"}, (+top.toFixed(1)) + unit),
    el("text", {x: L - 4, y: H - B, "text-anchor": "end"}, "0"),
  ];
  if (ref) kids.push(el("line", {x1: L, y1: y(ref), x2: W - R, y2: y(ref), stroke: "#b00",
    "stroke-dasharray": "2 3", class: "ref"}));
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    const line = el("polyline", {class: "series", "data-series": s.name, fill: "none",
      stroke: color, "stroke-width": 1.5, points: s.points.map(([t, v]) => x(t) + "," + y(v))
        .join(" "), "data-values": s.points.map(([, v]) => v).join(",")});
    if (s.dashed) line.setAttribute("stroke-dasharray", "4 3");
    kids.push(line);
    for (const [t, v] of s.points) {
      const dot = el("circle", {cx: x(t), cy: y(v), r: 2, fill: color, "data-series": s.name});
      dot.append(el("title", {}, s.name + ": " + v + unit + " at " +
        new Date(t * 1000).toISOString().slice(11, 16)));
      kids.push(dot);
    }
    kids.push(el("text", {x: L + 6 + 90 * (i % 4), y: T + 8 + 12 * Math.floor(i / 4),
      style: "fill: " + color, class: "legend"}, s.name));
  });
  svg.replaceChildren(...kids);
}
function byTier(history, value) {
  const names = [];  // tiers with any queued job or dispatch in the hour, in the page's order
  for (const m of history) for (const [tier, p] of Object.entries(m.tiers))
    if ((p.depth || p.dispatched) && !names.includes(tier)) names.push(tier);
  return names.map(tier => ({name: tier, points: history.filter(m => m.tiers[tier])
    .map(m => [m.at_s, value(m.tiers[tier])])}));
}
function byPool(history) {
  const pools = [...new Set(history.flatMap(m => Object.keys(m.pools)))].sort();
  return pools.flatMap((pool, i) => ["busy", "idle"].map(kind => ({
    name: pool + " " + kind, dashed: kind === "idle", color: COLORS[i % COLORS.length],
    points: history.filter(m => m.pools[pool]).map(m => [m.at_s, m.pools[pool][kind]])})));
}
function draw(v) {
  const h = v.history;
  chart("chart-depth", byTier(h, p => p.depth), v.at_s, "");
  chart("chart-wait", byTier(h, p => +(100 * p.slo_used).toFixed(1)), v.at_s, "%", 100);
  chart("chart-dispatch", byTier(h, p => p.dispatched), v.at_s, "");
  chart("chart-workers", byPool(h), v.at_s, "");
  fill("tenants", Object.entries(v.tenants).flatMap(([tier, top]) => ["queued", "leased"]
    .flatMap(by => top["by_" + by].map(t => [cell(tier), cell(by), cell(t.tenant),
      cell(t.queued), cell(t.leased)]))));
  fill("failures", v.failures.map(f => [cell(new Date(f.at_s * 1000).toISOString()
    .slice(11, 19)), cell(f.tier), cell(f.tenant), cell(f.model), cell(f.job_id),
    cell(f.code), cell(f.message, "message"), cell(f.final ? "failed" : "retried")]));
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
    draw(v);
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

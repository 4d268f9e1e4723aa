"""The portfolio report as one self-contained HTML page (no network assets).

The table is written server-side so the page reads without JavaScript; the two charts
(active versions by device type, transfer timelines) are drawn by inline JavaScript into SVG
from the same rows embedded as JSON, so the page can be mailed as a single file.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any

from bench.report.portfolio_rows import COLUMNS, cell

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2733;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#5b6670;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #d5dbe1;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;font-size:12px;margin-top:8px}
th,td{border-bottom:1px solid #e3e7eb;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#f3f5f7}td.bad{color:#b3261e;font-weight:600}
svg text{font:11px system-ui,sans-serif;fill:#1d2733}
.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
"""

# Builds both charts from #portfolio-data; marks each <svg> data-rendered="true" when done.
_SCRIPT = r"""
(function () {
  const rows = JSON.parse(document.getElementById('portfolio-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
                   '#7f7f7f', '#bcbd22', '#17becf'];
  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  // Active versions by device type: one stacked bar per type, one segment per version.
  const UNREAD = 'not read';
  const versions = [...new Set(rows.map(r => String(r.active_version ?? UNREAD)))].sort();
  const known = versions.filter(v => v !== UNREAD);
  const colour = v => v === UNREAD ? '#b8c0c8' : palette[known.indexOf(v) % palette.length];
  const types = [...new Set(rows.map(r => r.device_type || '?'))].sort();
  const counts = {};
  for (const r of rows) {
    const t = r.device_type || '?', v = String(r.active_version ?? UNREAD);
    counts[t] = counts[t] || {}; counts[t][v] = (counts[t][v] || 0) + 1;
  }
  const most = Math.max(1, ...types.map(t => Object.values(counts[t]).reduce((a, b) => a + b, 0)));
  const bars = document.getElementById('versions-chart');
  const rowH = 26, left = 80, width = 520;
  bars.setAttribute('height', String(types.length * rowH + 10));
  types.forEach((t, i) => {
    const y = 5 + i * rowH;
    bars.appendChild(el('text', {x: 0, y: y + 15}, t));
    let x = left;
    for (const v of versions) {
      const n = (counts[t] || {})[v] || 0;
      if (!n) continue;
      const w = width * n / most;
      const bar = el('rect', {x: x, y: y, width: w, height: rowH - 8, fill: colour(v),
                              class: 'bar', 'data-type': t, 'data-version': v, 'data-count': n});
      bar.appendChild(el('title', {}, t + ' ' + v + ': ' + n));
      bars.appendChild(bar);
      bars.appendChild(el('text', {x: x + 4, y: y + 14, fill: '#fff'}, String(n)));
      x += w;
    }
  });
  const legend = document.getElementById('versions-legend');
  for (const v of versions) {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = colour(v);
    item.appendChild(swatch); item.appendChild(document.createTextNode(v));
    legend.appendChild(item);
  }
  bars.setAttribute('data-rendered', 'true');

  // Transfer timelines: per device, distribution, alerts and the last 11.2 read on one time axis.
  const events = [];
  rows.forEach((r, i) => {
    if (r.distributed_at) events.push({row: i, at: Date.parse(r.distributed_at), kind: 'distributed',
                                       label: 'distributed by ' + (r.distributed_by || '?')});
    for (const a of (r.last_alerts || [])) {
      if (a.at) events.push({row: i, at: Date.parse(a.at), kind: 'alert', label: a.code + ' ' + (a.name || '')});
    }
    if (r.last_read_at) events.push({row: i, at: Date.parse(r.last_read_at), kind: 'read',
                                     label: '11.2 read ' + (r.last_read_version ?? '')});
  });
  const line = document.getElementById('timeline-chart');
  const shown = rows.map((r, i) => i).filter(i => events.some(e => e.row === i));
  line.setAttribute('height', String(Math.max(1, shown.length) * rowH + 30));
  if (!events.length) {
    line.appendChild(el('text', {x: 0, y: 16, class: 'empty'}, 'No transfers yet'));
  } else {
    const t0 = Math.min(...events.map(e => e.at)), t1 = Math.max(...events.map(e => e.at));
    const span = Math.max(1, t1 - t0), left2 = 180, w2 = 420;
    const xOf = t => left2 + w2 * (t - t0) / span;
    const shape = {distributed: '#1f77b4', alert: '#d62728', read: '#2ca02c'};
    shown.forEach((rowIndex, j) => {
      const y = 10 + j * rowH, mine = events.filter(e => e.row === rowIndex);
      const r = rows[rowIndex];
      line.appendChild(el('text', {x: 0, y: y + 4}, (r.eui || '?') + ' ' + (r.device_type || '')));
      const xs = mine.map(e => xOf(e.at));
      line.appendChild(el('line', {x1: Math.min(...xs), x2: Math.max(...xs), y1: y, y2: y,
                                   stroke: '#9aa5b1', 'stroke-width': 2, class: 'span'}));
      for (const e of mine) {
        const dot = el('circle', {cx: xOf(e.at), cy: y, r: 5, fill: shape[e.kind],
                                  class: 'event event-' + e.kind});
        dot.appendChild(el('title', {}, e.label + ' at ' + new Date(e.at).toISOString()));
        line.appendChild(dot);
      }
    });
    const axisY = 10 + shown.length * rowH;
    line.appendChild(el('text', {x: left2, y: axisY}, new Date(t0).toISOString().slice(11, 19)));
    line.appendChild(el('text', {x: left2 + w2 - 50, y: axisY}, new Date(t1).toISOString().slice(11, 19)));
  }
  line.setAttribute('data-rendered', 'true');
})();
"""


def _json_for_script(value: Any) -> str:
    """JSON safe inside <script>: no `</` can close the element early."""
    return json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")


def render_html(rows: list[dict[str, Any]], *, title: str = "Firmware portfolio",
                supplier: str | None = None, generated_at: datetime | None = None) -> str:
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    pending = sum(1 for r in rows if r.get("pending_version") is not None)
    disagree = sum(1 for r in rows if r.get("agrees_with_dcc") is False)
    head = "".join(f"<th>{html.escape(t)}</th>" for _k, t in COLUMNS)
    body = []
    for row in rows:
        cells = []
        for key, _title in COLUMNS:
            text = html.escape(cell(key, row.get(key)))
            bad = key == "agrees_with_dcc" and row.get(key) is False
            cells.append(f'<td class="bad">{text}</td>' if bad else f"<td>{text}</td>")
        body.append(f'<tr data-eui="{html.escape(str(row.get("eui")))}">{"".join(cells)}</tr>')
    who = f" for {html.escape(supplier)}" if supplier else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}{who}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}{who}</h1>
<div class="meta">Generated {html.escape(when)} by the MP207 test bench.</div>
<div class="cards">
<div class="card"><b id="count-devices">{len(rows)}</b>devices</div>
<div class="card"><b id="count-pending">{pending}</b>with a pending image</div>
<div class="card"><b id="count-disagree">{disagree}</b>disagree with the DCC record</div>
</div>
<h2>Active firmware versions by device type</h2>
<svg id="versions-chart" width="620" height="40" role="img"
 aria-label="active firmware versions by device type"></svg>
<div class="legend" id="versions-legend"></div>
<h2>Transfer timelines</h2>
<svg id="timeline-chart" width="620" height="40" role="img" aria-label="transfer timelines"></svg>
<div class="legend"><span><i style="background:#1f77b4"></i>image distributed</span>
<span><i style="background:#d62728"></i>firmware alert</span>
<span><i style="background:#2ca02c"></i>11.2 read</span></div>
<h2>Devices</h2>
<table id="portfolio"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<script type="application/json" id="portfolio-data">{_json_for_script(rows)}</script>
<script>{_SCRIPT}</script>
</body></html>
"""

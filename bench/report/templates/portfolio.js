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

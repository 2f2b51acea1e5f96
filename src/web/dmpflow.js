// The live page of dmpflow's HTTP endpoint (src/admin.h). It reads
// api/status and api/results every second and the state of one key on
// demand (state/windows/<window>/<key>), all relative to where the page is
// served, so it works behind a path prefix. Everything it shows is put in
// the page as text (textContent, SVG attributes), never as markup: keys and
// group values are data. Charts are small hand-written SVG.
'use strict';
(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 1000;
  const $ = (id) => document.getElementById(id);

  // An element with attributes and children (strings become text nodes).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function setText(id, text) {
    const e = $(id);
    if (e.textContent !== text) e.textContent = text;
  }

  // Integers exactly, with thousands separators (tests read them back).
  function fmtInt(n) {
    return n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US');
  }

  function fmtNum(x) {
    if (x === null || x === undefined) return '–';
    const a = Math.abs(x);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return x.toExponential(3);
    return x.toLocaleString('en-US', { maximumFractionDigits: a >= 100 ? 1 : 3 });
  }

  function fmtRate(x) {
    if (x === null || x === undefined) return '';
    if (x >= 1e6) return (x / 1e6).toFixed(2) + ' M/s';
    if (x >= 1e4) return (x / 1e3).toFixed(1) + ' k/s';
    return Math.round(x).toLocaleString('en-US') + '/s';
  }

  function fmtBytes(b) {
    if (b === null || b === undefined) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + ' ' + units[i];
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return '–';
    const neg = ms < 0;
    let s = Math.abs(ms) / 1000;
    let out;
    if (s < 1) out = Math.round(s * 1000) + ' ms';
    else if (s < 120) out = s.toFixed(1) + ' s';
    else if (s < 7200) out = (s / 60).toFixed(1) + ' min';
    else if (s < 172800) out = (s / 3600).toFixed(1) + ' h';
    else out = (s / 86400).toFixed(1) + ' d';
    return neg ? '-' + out : out;
  }

  // UTC; the date too when it is not today's.
  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '–';
    const iso = new Date(ms).toISOString();
    const today = new Date().toISOString().slice(0, 10);
    return iso.slice(0, 10) === today ? iso.slice(11, 19) : iso.slice(0, 10) + ' ' + iso.slice(11, 19);
  }

  function fmtSpan(start, end) {
    return '[' + fmtTime(start) + ', ' + fmtTime(end) + ')';
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
  }

  // Replaces a table's body with rows (arrays of cells: strings or
  // {text, cls, title, node, metric}).
  function fillTable(table, rows) {
    const body = table.tBodies[0];
    clear(body);
    for (const row of rows) {
      const tr = document.createElement('tr');
      for (const c of row) {
        const cell = typeof c === 'object' && c !== null ? c : { text: c };
        const td = el('td', cell.cls ? { class: cell.cls } : {});
        if (cell.node) td.appendChild(cell.node);
        else td.textContent = cell.text === undefined ? '' : String(cell.text);
        if (cell.title) td.title = cell.title;
        if (cell.metric) td.setAttribute('data-metric', cell.metric);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  // ---- charts ----

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // A line chart: series [{name, points: [[x, y], ...]}], x numeric
  // (epoch ms), y >= 0 unless some y < 0. Sets data-drawn to the number of
  // points drawn.
  function lineChart(svg, series, opts) {
    // one unit a pixel, so that text keeps its size whatever the width
    const W = Math.max(320, Math.round(svg.clientWidth || svg.getBoundingClientRect().width || 800));
    const H = 220, L = 64, R = 12, T = 12, B = 40;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    clear(svg);
    const pts = series.flatMap((s) => s.points.filter((p) => p[1] !== null && isFinite(p[1])));
    if (!pts.length) {
      svg.appendChild(svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' },
        opts.empty || 'no data yet'));
      svg.setAttribute('data-drawn', '0');
      return;
    }
    let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
    if (opts.xSpan && x1 - x0 < opts.xSpan) x0 = x1 - opts.xSpan;
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    let y0 = Math.min(0, ...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
    if (opts.tight) {
      const pad = (y1 - y0) * 0.1 || Math.abs(y1) * 0.1 || 1;
      y0 = Math.min(...pts.map((p) => p[1])) - pad;
      y1 = y1 + pad;
    } else {
      y1 = niceMax(y1);
    }
    const sx = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const y = y0 + (y1 - y0) * i / 4;
      svg.appendChild(svgEl('line', { x1: L, x2: W - R, y1: sy(y), y2: sy(y), class: 'grid-line' }));
      svg.appendChild(svgEl('text', { x: L - 6, y: sy(y) + 4, 'text-anchor': 'end', class: 'axis-label' },
        (opts.yFormat || fmtNum)(y)));
    }
    for (let i = 0; i <= 3; i++) {
      const x = x0 + (x1 - x0) * i / 3;
      svg.appendChild(svgEl('text', { x: sx(x), y: H - B + 16, 'text-anchor': i === 0 ? 'start' : i === 3 ? 'end' : 'middle',
        class: 'axis-label' }, (opts.xFormat || fmtTime)(x)));
    }
    let drawn = 0, lx = L;
    series.forEach((s, i) => {
      const cls = 's' + (i % 8);
      let d = '';
      let pen = false;
      for (const [x, y] of s.points) {
        if (y === null || !isFinite(y) || x < x0) { pen = false; continue; }
        d += (pen ? 'L' : 'M') + sx(x).toFixed(1) + ' ' + sy(y).toFixed(1) + ' ';
        pen = true;
        drawn++;
      }
      if (d) svg.appendChild(svgEl('path', { d: d.trim(), class: 'series ' + cls, 'data-name': s.name }));
      if (s.points.length === 1 || s.dots) {
        for (const [x, y] of s.points) {
          if (y !== null && isFinite(y) && x >= x0) svg.appendChild(svgEl('circle', { cx: sx(x), cy: sy(y), r: 2.5, class: cls }));
        }
      }
      // legend along the bottom
      svg.appendChild(svgEl('rect', { x: lx, y: H - 14, width: 10, height: 10, class: cls }));
      const label = svgEl('text', { x: lx + 14, y: H - 5, class: 'legend' }, s.name);
      svg.appendChild(label);
      lx += 24 + Math.min(String(s.name).length, 24) * 7;
    });
    svg.setAttribute('data-drawn', String(drawn));
  }

  // ---- status ----

  function metricKey(name, labels) {
    const l = Object.entries(labels || {}).map(([k, v]) => k + '="' + v + '"').join(',');
    return l ? name + '{' + l + '}' : name;
  }

  function renderStatus(st) {
    const m = st.metrics;
    setText('pipeline', st.input_topic + ' → ' + st.output_topic + ' · group ' + st.group_id + ' · v' + st.version);
    const pill = $('state');
    pill.textContent = m.ready ? 'ready' : 'not ready';
    pill.className = 'pill ' + (m.ready ? 'ok' : 'bad');
    setText('updated', 'updated ' + fmtTime(st.now_ms) + ' UTC');

    const h = st.history;
    const last = (a) => (a.length ? a[a.length - 1] : null);
    setText('t-events', fmtInt(m.totals.events));
    setText('t-events-rate', fmtRate(last(h.events_per_s)));
    setText('t-results', fmtInt(m.totals.results));
    setText('t-results-rate', fmtRate(last(h.results_per_s)));
    setText('t-groups', fmtInt(m.totals.group_results));
    setText('t-patterns', fmtInt(m.totals.patterns));
    setText('t-dead', fmtInt(m.totals.dead_letters));
    setText('t-late', fmtInt(m.totals.late_events));
    setText('t-assigned', fmtInt(m.assigned));
    setText('t-rebalances', fmtInt(m.rebalances) + (m.rebalances === 1 ? ' rebalance' : ' rebalances') +
      (m.last_rebalance_ms ? ', last ' + fmtTime(m.last_rebalance_ms) : ''));
    const mem = m.memory;
    const used = mem.entries + mem.block_cache + mem.memtables;
    setText('t-memory', fmtBytes(used));
    setText('t-memory-sub', 'of ' + fmtBytes(mem.budget) + ' budget · RSS ' + fmtBytes(st.rss_bytes));

    lineChart($('chart-rates'), [
      { name: 'events/s in', points: h.t_ms.map((t, i) => [t, h.events_per_s[i]]) },
      { name: 'results/s out', points: h.t_ms.map((t, i) => [t, h.results_per_s[i]]) },
    ], { xSpan: 300000, yFormat: (y) => fmtRate(y).replace('/s', '') });
    lineChart($('chart-watermark'), [
      { name: 'wall clock − stream time (largest of the partitions)',
        points: h.t_ms.map((t, i) => [t, h.watermark_lag_ms[i]]) },
    ], { xSpan: 300000, tight: true, yFormat: fmtDuration, empty: 'no event time yet' });

    const maxLag = Math.max(1, ...m.partitions.map((p) => p.lag || 0));
    const topic = st.input_topic;
    fillTable($('partitions'), m.partitions.map((p) => {
      const bar = el('span', { class: 'lagbar' });
      bar.style.width = Math.round(((p.lag || 0) / maxLag) * 80) + 'px';
      return [
        String(p.partition),
        { text: fmtInt(p.next_offset), cls: 'num', metric: metricKey('dmpflow_next_offset', { topic, partition: p.partition }) },
        { text: p.lag === null ? '–' : fmtInt(p.lag), cls: 'num',
          metric: p.lag === null ? null : metricKey('dmpflow_consumer_lag', { topic, partition: p.partition }) },
        { node: p.lag === 0 ? el('span', { class: 'caught' }, 'caught up') : bar },
        fmtTime(p.stream_time_ms),
        fmtDuration(p.watermark_lag_ms),
      ];
    }));

    fillTable($('late'), Object.entries(m.late_events).map(([w, n]) =>
      [w, { text: fmtInt(n), cls: 'num', metric: metricKey('dmpflow_late_events_total', { window: w }) }]));
    const dead = Object.entries(m.dead_letters).filter(([, n]) => n > 0);
    fillTable($('dead'), dead.length ? dead.map(([c, n]) =>
      [c, { text: fmtInt(n), cls: 'num', metric: metricKey('dmpflow_dead_letters_total', { class: c }) }])
      : [['none', '']]);
    fillTable($('recent-dead'), st.recent_dead_letters.length
      ? st.recent_dead_letters.map((d) => [String(d.partition), { text: fmtInt(d.offset), cls: 'num' }, d.class, fmtTime(d.at_ms)])
      : [['–', '', 'none yet', '']]);

    const b = mem.budget || 1;
    const segs = $('memory-bar').children;
    [mem.entries, mem.block_cache, mem.memtables].forEach((v, i) => {
      segs[i].style.width = Math.min(100, (v / b) * 100).toFixed(2) + '%';
    });
    fillTable($('memory'), [
      ['entries (windows in memory)', { text: fmtBytes(mem.entries), cls: 'num' }],
      ['RocksDB block cache', { text: fmtBytes(mem.block_cache), cls: 'num' }],
      ['RocksDB memtables', { text: fmtBytes(mem.memtables), cls: 'num' }],
      ['budget', { text: fmtBytes(mem.budget), cls: 'num' }],
      ['evicted / reloaded entries', { text: fmtInt(mem.evictions) + ' / ' + fmtInt(mem.reloads), cls: 'num' }],
      ['commits (longest)', { text: fmtInt(m.commits.count) + ' (' + fmtDuration(m.commits.max_seconds * 1000) + ')', cls: 'num' }],
    ]);

    const sel = $('search-window');
    const queryable = st.windows.filter((w) => w.queryable).map((w) => w.name);
    if (sel.options.length !== queryable.length) {
      clear(sel);
      for (const w of queryable) sel.appendChild(el('option', { value: w }, w));
    }
  }

  // ---- results ----

  function renderResults(res) {
    const tops = $('tops');
    clear(tops);
    for (const t of res.top) {
      const title = t.start === null
        ? 'window ' + t.window + ' (' + t.kind + ') · ' + t.measure + (t.kind === 'sliding' || t.kind === 'session' ? ' · latest closed' : ' · none closed yet')
        : 'window ' + t.window + ' ' + fmtSpan(t.start, t.end) + ' · ' + t.measure + ' · ' + fmtInt(t.keys) + ' keys';
      const table = el('table', { class: 'data', 'data-window': t.window, 'data-measure': t.measure },
        el('thead', {}, el('tr', {}, el('th', {}, '#'), el('th', {}, 'key'),
          el('th', {}, 'events'), el('th', {}, 'sum'), el('th', {}, 'mean'))), el('tbody'));
      fillTable(table, t.rows.map((r, i) => [String(i + 1),
        { text: r.key + (r.cut ? '…' : ''), cls: 'key', title: r.key },
        { text: fmtInt(r.count), cls: 'num' }, { text: fmtNum(r.sum), cls: 'num' },
        { text: fmtNum(r.mean), cls: 'num' }]));
      tops.appendChild(el('div', {}, el('h3', {}, title), table));
    }

    const groups = $('groups');
    clear(groups);
    if (!res.groups.length) groups.appendChild(el('p', { class: 'muted' }, 'no windowed group statistics yet ([group] windows = ...)'));
    for (const g of res.groups) {
      const svg = svgEl('svg', { class: 'chart group-chart', viewBox: '0 0 800 220', 'data-group': g.group });
      groups.appendChild(el('div', {}, el('h3', {}, 'group ' + g.group + ' · window ' + g.window + ' · mean(' + g.measure + ')'), svg));
      lineChart(svg, g.series.map((s) => ({ name: s.value, dots: true, points: s.points.map((p) => [p[0], p[1]]) })),
        { tight: true });
    }
    if (res.groups_hidden) groups.appendChild(el('p', { class: 'muted' }, fmtInt(res.groups_hidden) + ' more group values not charted'));

    const feed = $('feed');
    clear(feed);
    if (!res.patterns.length) feed.appendChild(el('li', { class: 'muted' }, 'no pattern found yet'));
    for (const p of res.patterns) {
      let what;
      if (p.kind === 'topk') what = '#' + p.rank + ' ' + p.stat + '(' + p.measure + ') = ' + fmtNum(p.value) + ' over ' + fmtInt(p.count) + ' events';
      else if (p.kind === 'anomaly') what = p.stat + '(' + p.measure + ') = ' + fmtNum(p.value) + ', z = ' + fmtNum(p.score) + ' against ' + fmtNum(p.mean) + ' ± ' + fmtNum(p.stddev) + ' (' + p.observations + ' windows)';
      else what = p.stat + '(' + p.measure + ') = ' + fmtNum(p.value) + ', ' + p.direction + ' the bound by ' + fmtNum(p.score) + ' (' + p.observations + ' windows in a row)';
      feed.appendChild(el('li', { 'data-pattern': p.pattern, 'data-kind': p.kind, 'data-subject': p.subject, 'data-start': p.start },
        el('span', { class: 'badge ' + p.kind }, p.kind), el('b', {}, p.pattern), ' ', fmtSpan(p.start, p.end), ' ',
        el('span', { class: 'subject' }, (p.source === 'key' ? 'key ' : p.source + ' ') + p.subject), ': ', what));
    }
  }

  // ---- the key search ----

  async function search(ev) {
    ev.preventDefault();
    const w = $('search-window').value, key = $('search-key').value;
    const out = $('search-result');
    clear(out);
    if (!w || !key) {
      out.appendChild(el('p', { class: 'error' }, 'choose a window definition and type a key'));
      return;
    }
    let status, body;
    try {
      const r = await fetch('state/windows/' + encodeURIComponent(w) + '/' + encodeURIComponent(key),
        { cache: 'no-store', credentials: 'same-origin' });
      status = r.status;
      body = await r.json();
    } catch (e) {
      out.appendChild(el('p', { class: 'error' }, 'request failed: ' + e));
      return;
    }
    if (status !== 200) {
      out.appendChild(el('p', { class: 'error', 'data-status': status }, (body && body.error) || 'HTTP ' + status));
      return;
    }
    const measures = [...new Set(body.windows.flatMap((x) => Object.keys(x.measures)))];
    const head = el('tr', {}, el('th', {}, 'window (UTC)'), el('th', {}, 'state'));
    for (const m of measures) head.append(el('th', {}, m + ' count'), el('th', {}, m + ' sum'), el('th', {}, m + ' mean'));
    const table = el('table', { class: 'data', id: 'search-table', 'data-key': body.key }, el('thead', {}, head), el('tbody'));
    fillTable(table, body.windows.map((x) => {
      const row = [{ text: fmtSpan(x.start, x.end), title: x.start + ' – ' + x.end }, x.final ? 'closed (published)' : 'open'];
      for (const m of measures) {
        const a = x.measures[m];
        row.push({ text: a ? fmtInt(a.count) : '–', cls: 'num' }, { text: a ? fmtNum(a.sum) : '–', cls: 'num' },
          { text: a ? fmtNum(a.mean) : '–', cls: 'num' });
      }
      return row;
    }));
    out.append(el('p', {}, 'key ', el('b', {}, body.key), ' in window ' + body.window + ': ' + body.windows.length + ' windows'), table);
  }

  // ---- the loop ----

  async function getJSON(path) {
    const r = await fetch(path, { cache: 'no-store', credentials: 'same-origin' });
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return r.json();
  }

  async function refresh() {
    try {
      const [st, res] = await Promise.all([getJSON('api/status'), getJSON('api/results')]);
      renderStatus(st);
      renderResults(res);
      document.body.setAttribute('data-refreshed', String(st.now_ms));
    } catch (e) {
      const pill = $('state');
      pill.textContent = 'unreachable';
      pill.className = 'pill bad';
      pill.title = String(e);
    }
    setTimeout(refresh, REFRESH_MS);
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('search').addEventListener('submit', search);
    refresh();
  });
})();

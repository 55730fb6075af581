// vigild's dashboard: polls /api/dashboard every second, keeps two minutes of samples per
// domain and draws them. Everything from the server (domain names, console bytes) is hostile
// text: it reaches the page through textContent and canvas fillText only, never as markup.
'use strict';

const POLL_MS = 1000;
const WINDOW_S = 120;
const COLORS = ['#58a6ff', '#f78166', '#7ee787', '#d2a8ff', '#e3b341', '#ff7b72', '#79c0ff', '#a5d6ff',
                '#ffa657', '#56d364', '#bc8cff', '#f2cc60', '#39c5cf', '#ff9bce', '#c9d1d9', '#8ddb8c'];

const series = new Map();  // domain id -> {name, color, prev, t[], cpu[], occupancy[], bandwidth[], events[]}
let polls = 0;

const PLOTS = [
  {id: 'plot-cpu', key: 'cpu', unit: '%', floor: 100, empty: 'no running domain'},
  {id: 'plot-occupancy', key: 'occupancy', unit: ' KiB', floor: 64,
   empty: 'no domain has cache monitoring (psr_cmt = 1 or vigil psr-cmt-attach)'},
  {id: 'plot-bandwidth', key: 'bandwidth', unit: ' MB/s', floor: 1,
   empty: 'no domain has cache monitoring (psr_cmt = 1 or vigil psr-cmt-attach)'},
  {id: 'plot-events', key: 'events', unit: '/s', floor: 10, empty: 'no vm_event traffic'},
];

function num(v) { return typeof v === 'number' && Number.isFinite(v) ? v : 0; }
function str(v, max = 256) { return typeof v === 'string' ? v.slice(0, max) : ''; }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function setStatus(state, text) {
  const s = document.getElementById('status');
  s.dataset.state = state;
  s.textContent = text;
}

function fmtBytes(b) {
  if (b >= 1 << 30) return (b / (1 << 30)).toFixed(1) + ' GiB';
  if (b >= 1 << 20) return (b / (1 << 20)).toFixed(1) + ' MiB';
  if (b >= 1 << 10) return (b / (1 << 10)).toFixed(1) + ' KiB';
  return b.toFixed(0) + ' B';
}

// One poll's document into the series. Rates divide by vigild's clock (time_s) between two
// samples of the same domain; the plots' time axis is the page's own clock, so a headless
// browser's virtual time (the e2e test's screenshot) spaces samples as a real one does.
function ingest(doc) {
  const now = performance.now() / 1000;
  const server = num(doc.time_s);
  const seen = new Set();
  for (const d of Array.isArray(doc.domains) ? doc.domains : []) {
    if (typeof d !== 'object' || d === null || !Number.isInteger(d.id)) continue;
    seen.add(d.id);
    let s = series.get(d.id);
    if (!s) {
      s = {color: COLORS[d.id % COLORS.length], prev: null, t: [], cpu: [], occupancy: [], bandwidth: [], events: []};
      series.set(d.id, s);
    }
    s.name = str(d.name);
    s.doc = d;
    const psr = typeof d.psr === 'object' && d.psr !== null ? d.psr : null;
    const cur = {t: server, cpu: num(d.cpu_seconds), mbm: psr ? num(psr.mbm_total_bytes) : null, ev: num(d.vm_events)};
    const p = s.prev;
    if (p && cur.t > p.t) {
      const dt = cur.t - p.t;
      s.t.push(now);
      s.cpu.push(Math.max(0, (cur.cpu - p.cpu) / dt * 100));
      s.occupancy.push(psr ? num(psr.occupancy_bytes) / 1024 : null);
      s.bandwidth.push(psr && p.mbm !== null ? Math.max(0, (cur.mbm - p.mbm) / dt / 1e6) : null);
      s.events.push(Math.max(0, (cur.ev - p.ev) / dt));
      while (s.t.length && s.t[0] < now - WINDOW_S) {
        for (const k of ['t', 'cpu', 'occupancy', 'bandwidth', 'events']) s[k].shift();
      }
    }
    s.prev = cur;
  }
  for (const id of [...series.keys()]) if (!seen.has(id)) series.delete(id);
  return now;
}

function last(a) { return a.length ? a[a.length - 1] : null; }

// The smallest 1, 2, 2.5 or 5 times a power of ten at or above x: a round top for a scale.
function niceCeil(x) {
  if (!(x > 0)) return 0;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function drawPlot(plot, now) {
  const canvas = document.getElementById(plot.id);
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
  if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 56, right = 8, top = 8, bottom = 18;
  const pw = w - left - right, ph = h - top - bottom;
  let max = 0, samples = 0;
  for (const s of series.values()) {
    for (const v of s[plot.key]) if (v !== null) { max = Math.max(max, v); samples++; }
  }
  canvas.dataset.samples = String(samples);
  canvas.dataset.max = max.toFixed(3);
  const scale = Math.max(plot.floor, niceCeil(max * 1.1));
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#2c323c';
  g.fillStyle = '#8a93a3';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(left + pw, y); g.stroke();
    const label = (scale * i / 4);
    g.fillText((label === 0 ? '0' : label >= 100 ? label.toFixed(0) : label.toPrecision(2)) + plot.unit, 2, y + 4);
  }
  g.fillText(`-${WINDOW_S}s`, left, h - 4);
  g.fillText('now', left + pw - 22, h - 4);
  if (samples === 0) {
    g.fillText(series.size ? plot.empty : 'no domains', left + 10, top + ph / 2);
    return;
  }
  g.lineWidth = 2;
  for (const s of series.values()) {
    g.strokeStyle = s.color;
    g.beginPath();
    let pen = false;
    s[plot.key].forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const x = left + pw - ((now - s.t[i]) / WINDOW_S) * pw;
      const y = top + ph - (Math.min(v, scale) / scale) * ph;
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
    });
    g.stroke();
  }
}

function renderTable() {
  const body = document.querySelector('#domains tbody');
  const rows = [];
  for (const [id, s] of series) {
    const d = s.doc;
    const tr = el('tr');
    tr.dataset.domain = s.name;
    tr.dataset.state = str(d.state, 16);
    tr.dataset.cpuSamples = String(s.cpu.length);
    tr.dataset.cpuLast = (last(s.cpu) ?? 0).toFixed(1);
    const name = el('td');
    const sw = el('span', undefined, 'swatch');
    sw.style.background = s.color;
    name.append(sw, el('span', s.name));
    const states = Array.isArray(d.vcpu_states) ? d.vcpu_states.map((v) => str(v, 16)) : [];
    const cpu = last(s.cpu), ev = last(s.events), bw = last(s.bandwidth), occ = last(s.occupancy);
    const state = el('td', str(d.state, 16), 'state-' + str(d.state, 16).replace(/[^a-z]/g, ''));
    if (d.stop_reason) state.title = str(d.stop_reason, 200);
    tr.append(name, el('td', String(id), 'num'), state,
              el('td', `${num(d.vcpus)} (${states.join(', ')})`),
              el('td', cpu === null ? '…' : cpu.toFixed(1), 'num'),
              el('td', fmtBytes(num(d.memory_mib) * 1048576), 'num'),
              el('td', ev === null ? '…' : ev.toFixed(0), 'num'),
              el('td', occ === null ? '–' : fmtBytes(occ * 1024), 'num'),
              el('td', bw === null ? '–' : bw.toFixed(1) + ' MB/s', 'num'));
    rows.push(tr);
  }
  body.replaceChildren(...rows);

  const legend = document.getElementById('legend');
  legend.replaceChildren(...[...series.values()].map((s) => {
    const item = el('span');
    const sw = el('span', undefined, 'swatch');
    sw.style.background = s.color;
    item.append(sw, el('span', s.name));
    return item;
  }));
}

function renderConsoles() {
  const box = document.getElementById('consoles');
  const have = new Map([...box.children].map((c) => [c.dataset.id, c]));
  const order = [];
  for (const [id, s] of series) {
    let c = have.get(String(id));
    if (!c) {
      c = el('div', undefined, 'console');
      c.dataset.id = String(id);
      const pre = el('pre');
      // Follow the newest output until the reader scrolls up; scrolling back down follows again.
      pre.dataset.follow = '1';
      pre.addEventListener('scroll', () => {
        pre.dataset.follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4 ? '1' : '0';
      });
      c.append(el('h3'), pre);
    }
    c.querySelector('h3').textContent = `${s.name} — console`;
    const pre = c.querySelector('pre');
    const text = str(s.doc.console_tail, 8192);
    if (pre.textContent !== text) pre.textContent = text;
    order.push(c);
  }
  box.replaceChildren(...order);
  for (const pre of box.querySelectorAll('pre')) {
    if (pre.dataset.follow === '1') pre.scrollTop = pre.scrollHeight;
  }
}

async function poll() {
  try {
    const r = await fetch('/api/dashboard', {cache: 'no-store', credentials: 'same-origin'});
    if (!r.ok) throw new Error(`vigild answered ${r.status}`);
    const doc = await r.json();
    const now = ingest(doc);
    polls++;
    document.body.dataset.polls = String(polls);
    renderTable();
    renderConsoles();
    for (const p of PLOTS) drawPlot(p, now);
    document.getElementById('summary').textContent =
        `${series.size} domain(s), ${num(doc.workers)} worker(s)` + (doc.psr ? ', cache model on' : '');
    setStatus('ok', 'live · ' + new Date().toLocaleTimeString());
  } catch (e) {
    setStatus('error', 'cannot reach vigild: ' + (e && e.message ? e.message : String(e)));
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();

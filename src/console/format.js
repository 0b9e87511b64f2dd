// How things look: a small DOM builder (text is always set as text, never parsed as HTML), local
// times, durations, sizes, status badges, progress bars, event rows, and the export files.

/** Builds an element: h('a', { href, class }, child, ...); children are nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** `2026-11-25 22:18:28.770` in the browser's time zone. */
export function localTime(value) {
  const t = new Date(value);
  if (Number.isNaN(t.getTime())) return String(value ?? '');
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
}

/** `3 min ago`, `in 2 h 5 min`. */
export function relative(value, now = Date.now()) {
  const ms = new Date(value).getTime() - now;
  if (Number.isNaN(ms)) return '';
  const text = duration(Math.abs(ms) / 1000);
  if (Math.abs(ms) < 1000) return 'just now';
  return ms < 0 ? `${text} ago` : `in ${text}`;
}

/** `45 s`, `3 min`, `2 h 5 min`, `7 d`. */
export function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ''}`;
  }
  const h = Math.floor((s % 86400) / 3600);
  return `${Math.floor(s / 86400)} d${h ? ` ${h} h` : ''}`;
}

/** `1.4 KB`, `12.5 MB`. */
export function bytes(n) {
  if (n === null || n === undefined) return 'unknown';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A time with its relative form underneath. */
export function when(value) {
  return h('span', { class: 'when', title: new Date(value).toISOString?.() ?? '' },
    localTime(value), h('small', {}, relative(value)));
}

/** A colored badge for a photo status. */
export function statusBadge(status) {
  return h('span', { class: `badge status-${status ?? 'unknown'}` }, status ?? 'unknown');
}

/** A progress bar with its percentage. */
export function progressBar(progress, { large = false, status = null } = {}) {
  const p = Math.max(0, Math.min(100, Number(progress) || 0));
  const fill = h('span', { class: 'fill' });
  fill.style.width = `${p}%`; // through CSSOM: the page's CSP allows no inline style attributes
  return h('span', { class: `progress${large ? ' large' : ''}${status ? ` bar-${status}` : ''}`, role: 'progressbar', 'aria-valuenow': p },
    h('span', { class: 'track' }, fill),
    h('span', { class: 'pct' }, `${Math.round(p)}%`));
}

/** The family of an event type, for its color: uploaded, processing, completed, failed, deleted, system. */
export function typeFamily(type) {
  if (type === 'photo.uploaded') return 'uploaded';
  if (type === 'photo.processing.completed') return 'completed';
  if (type === 'photo.processing.failed') return 'failed';
  if (type === 'photo.deleted') return 'deleted';
  if (type?.startsWith('photo.processing')) return 'processing';
  return 'system';
}

export function typeLabel(type) {
  return h('span', { class: `type type-${typeFamily(type)}` }, type);
}

const SHOWN = new Set(['photoId', 'progress', 'stage', 'eventId', 'room', 'seq', 'timestamp', 'error']);

/** What else an event's data says, in a line: its error first, then other fields. */
export function detail(data) {
  const parts = [];
  if (data?.error) parts.push(h('span', { class: 'error-text' }, data.error));
  for (const [key, value] of Object.entries(data ?? {})) {
    if (SHOWN.has(key)) continue;
    parts.push(h('span', { class: 'kv' }, h('b', {}, key), ' ', typeof value === 'string' ? value : JSON.stringify(value)));
  }
  return parts;
}

/**
 * Table rows for one event ({ seq, type, timestamp, data, eventId }): the row and its hidden
 * payload row, toggled by the row's button.
 */
export function eventRows(event, { fresh = false } = {}) {
  const payload = h('tr', { class: 'payload', hidden: true },
    h('td', { colspan: 7 }, h('pre', {}, JSON.stringify({ eventId: event.eventId, type: event.type, data: event.data, timestamp: event.timestamp }, null, 2))));
  const toggle = h('button', {
    class: 'link toggle',
    'aria-expanded': 'false',
    title: 'Show the whole event',
    onclick: () => {
      payload.hidden = !payload.hidden;
      toggle.setAttribute('aria-expanded', String(!payload.hidden));
      toggle.textContent = payload.hidden ? '▸' : '▾';
    },
  }, '▸');
  const progress = event.data?.progress;
  const row = h('tr', { class: `event${fresh ? ' fresh' : ''}`, 'data-seq': event.seq },
    h('td', { class: 'toggle-cell' }, toggle),
    h('td', { class: 'num' }, event.seq),
    h('td', { class: 'mono' }, localTime(event.timestamp)),
    h('td', {}, typeLabel(event.type)),
    h('td', {}, progress === undefined ? '' : progressBar(progress)),
    h('td', {}, event.data?.stage ?? ''),
    h('td', { class: 'detail' }, detail(event.data)));
  return [row, payload];
}

/** The header of an event table. */
export function eventHead() {
  return h('thead', {}, h('tr', {},
    h('th', { class: 'toggle-cell' }), h('th', { class: 'num' }, 'Seq'), h('th', {}, 'Time'),
    h('th', {}, 'Type'), h('th', {}, 'Progress'), h('th', {}, 'Stage'), h('th', {}, 'Details')));
}

/** A notice row for a pruned range of seqs. */
export function prunedRow(from, to, text = 'pruned by retention') {
  return h('tr', { class: 'pruned' }, h('td', { colspan: 7 },
    h('span', { class: 'pruned-icon' }, '✂'), ` ${seqRange(from, to)} ${from === to ? 'was' : 'were'} ${text}.`));
}

/** `Event 4` or `Events 1..5`. */
export function seqRange(from, to) {
  return from === to ? `Event ${from}` : `Events ${from}..${to}`;
}

const CSV_HEADER = 'seq,timestamp,type,eventId,progress,stage,error,data';

function csvField(value) {
  const text = value === undefined || value === null ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** History events as JSONL: one event object per line, as the history endpoint gives them. */
export function toJsonl(events) {
  return events.map((e) => JSON.stringify(e)).join('\n') + (events.length ? '\n' : '');
}

/** History events as CSV, the same columns as `socket-bridge history --format csv`. */
export function toCsv(events) {
  const lines = events.map((e) => [e.seq, e.timestamp, e.type, e.eventId, e.data?.progress, e.data?.stage, e.data?.error, e.data ?? {}]
    .map(csvField).join(','));
  return [CSV_HEADER, ...lines].join('\n') + '\n';
}

/** Offers `text` as a file download. */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

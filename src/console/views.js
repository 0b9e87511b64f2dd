// The console's views: sign-in, photo lookup (status card and timeline), live tail, a user's
// photos, and the hub overview. Each renders into `root` and registers what to stop when the
// user leaves it with `ctx.onLeave`.

import { ApiError, allEvents, get, setToken, token } from './api.js';
import { follow } from './sse.js';
import {
  bytes, download, duration, eventHead, eventRows, h, localTime, progressBar, prunedRow, relative,
  seqRange, statusBadge, toCsv, toJsonl, typeLabel, when,
} from './format.js';

const enc = encodeURIComponent;
const PAGE_SIZES = [25, 50, 100];
const STATUS_CONCURRENCY = 6;
const OVERVIEW_REFRESH_MS = 10000;

function callout(kind, title, ...body) {
  return h('div', { class: `callout ${kind}`, role: kind === 'danger' ? 'alert' : 'status' },
    h('strong', {}, title), h('p', {}, ...body));
}

const plural = (n, word) => `${n.toLocaleString('en')} ${word}${n === 1 ? '' : 's'}`;

function emptyState(text) {
  return h('div', { class: 'empty' }, text);
}

function loading() {
  return h('div', { class: 'loading' }, 'Loading…');
}

/** What went wrong, in words a support person can act on. */
export function problem(error, what, me) {
  if (!(error instanceof ApiError)) {
    return callout('danger', 'Something broke in the console', String(error?.message ?? error));
  }
  const perms = me?.permissions?.length ? me.permissions.join(', ') : 'no permissions';
  switch (error.status) {
    case 0:
      return callout('warning', 'The hub is not answering', 'This view reloads by itself when the hub is back.');
    case 400:
      return callout('warning', 'That is not a valid id or room', error.detail);
    case 401:
      return error.expired
        ? callout('danger', 'Your token has expired', 'Sign in again with a fresh token.')
        : callout('danger', 'The hub refused your token', `${error.detail}. Sign in again.`);
    case 403:
      return callout('danger', 'Forbidden', `Your token (user ${me?.userId}; ${perms}) may not read ${what}. `,
        'Reading other users\' photos and rooms needs support:read.');
    case 404:
      return callout('warning', 'Not found', `The hub has nothing stored for ${what}. Check the id: a photo exists `,
        'from its first event, and a deleted photo is forgotten once retention has removed it.');
    default:
      return callout('danger', 'The hub failed', `${error.detail || error.message} Try again; the hub's log says why.`);
  }
}

function pageHead(title, ...rest) {
  return h('section', { class: 'page-head' }, h('h1', {}, title), ...rest);
}

function lookupForm({ label, placeholder, value, button, go }) {
  const input = h('input', { type: 'search', name: label, placeholder, value: value ?? '', 'aria-label': label, autocomplete: 'off', spellcheck: 'false' });
  const form = h('form', {
    class: 'lookup',
    onsubmit: (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (v) go(v);
    },
  }, input, h('button', { class: 'primary', type: 'submit' }, button));
  queueMicrotask(() => value || input.focus());
  return form;
}

function fact(label, ...value) {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

// ---------------------------------------------------------------------------------------------
// Sign-in

/** The sign-in card: paste a token; `done(me)` once the hub accepts it. */
export function signInView(root, { message, done }) {
  const area = h('textarea', { name: 'token', rows: 5, placeholder: 'eyJhbGciOiJIUzI1NiIs…', 'aria-label': 'Token', spellcheck: 'false' });
  const feedback = h('div', { class: 'feedback' }, message ?? '');
  const button = h('button', { class: 'primary', type: 'submit' }, 'Sign in');
  const form = h('form', {
    class: 'card signin',
    onsubmit: async (e) => {
      e.preventDefault();
      const candidate = area.value.trim().replace(/^Bearer\s+/i, '');
      if (!candidate) return;
      button.disabled = true;
      feedback.replaceChildren('Checking the token…');
      try {
        const me = await get('me', { withToken: candidate });
        setToken(candidate);
        done(me);
      } catch (error) {
        feedback.replaceChildren(signInProblem(error, candidate));
        button.disabled = false;
      }
    },
  },
  h('h1', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'Paste a token for this hub. It stays in this browser tab only and is sent to this hub alone.'),
  area, button, feedback,
  h('div', { class: 'hint' },
    h('p', {}, 'Support staff need ', h('code', {}, 'support:read'), '. Mint a token on the hub\'s host:'),
    h('pre', {}, 'socket-bridge token --user <you> --permission support:read --ttl 8h')));
  root.replaceChildren(form);
  area.focus();
}

/** The `exp` a token claims (unverified: only to word a message), as a Date. */
export function claimedExpiry(jwt) {
  try {
    const body = jwt.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    const { exp } = JSON.parse(atob(body));
    return Number.isFinite(exp) ? new Date(exp * 1000) : null;
  } catch {
    return null;
  }
}

/** Why a pasted token was not taken. */
export function signInProblem(error, candidate = '') {
  if (!(error instanceof ApiError)) return callout('danger', 'Could not check the token', String(error));
  if (error.status === 0) return callout('warning', 'The hub is not answering', 'Try again in a moment.');
  if (error.expired) {
    const exp = claimedExpiry(candidate);
    const at = exp ? ` It expired at ${localTime(exp)} (${relative(exp)}).` : '';
    return callout('danger', 'This token has expired', `${at} Mint a fresh one and paste it here.`.trim());
  }
  const why = {
    bad_signature: 'it was signed with another secret (another hub?)',
    malformed: 'it is not a token (was it cut short when copied?)',
    missing: 'it is empty',
  }[error.reason] ?? error.detail;
  return callout('danger', 'The hub refused this token', `${why}.`);
}

// ---------------------------------------------------------------------------------------------
// Photo lookup

async function photoView(root, [photoId], ctx) {
  root.append(pageHead('Photo lookup', lookupForm({
    label: 'Photo id', placeholder: 'Photo id, e.g. p1', value: photoId, button: 'Look up',
    go: (id) => { location.hash = `#/photo/${enc(id)}`; },
  })));
  if (!photoId) {
    root.append(emptyState('Enter a photo id to see its status and the story of its events.'));
    return;
  }
  const body = h('div', { class: 'photo' }, loading());
  root.append(body);
  const room = `photo:${photoId}`;
  let status;
  let info;
  try {
    [status, info] = await Promise.all([get(`photos/${enc(photoId)}/status`), get(`rooms/${enc(room)}`)]);
  } catch (error) {
    body.replaceChildren(problem(error, `photo “${photoId}”`, ctx.me));
    return;
  }
  if (!ctx.alive()) return;
  body.replaceChildren(statusCard(status, info, ctx), timelineCard(room, info, ctx));
}

function exportButton(room, format) {
  const name = `${room.replace(':', '-')}-events.${format === 'CSV' ? 'csv' : 'jsonl'}`;
  const button = h('button', {
    class: 'secondary',
    onclick: async () => {
      button.disabled = true;
      try {
        const events = await allEvents(room);
        if (format === 'CSV') download(name, toCsv(events), 'text/csv');
        else download(name, toJsonl(events), 'application/x-ndjson');
      } finally {
        button.disabled = false;
      }
    },
  }, `Export ${format}`);
  return button;
}

function statusCard(status, info, ctx) {
  const kept = info.oldestSeq > info.headSeq ? 'none (all pruned)' : `seq ${info.oldestSeq}–${info.headSeq}`;
  return h('section', { class: 'card status-card' },
    h('div', { class: 'card-head' },
      h('h2', {}, 'Photo ', h('code', {}, status.photoId)),
      statusBadge(status.status),
      h('div', { class: 'actions' },
        h('a', { class: 'button', href: `#/tail/${enc(`photo:${status.photoId}`)}` }, h('span', { class: 'dot live' }), 'Live tail'),
        exportButton(`photo:${status.photoId}`, 'JSONL'),
        exportButton(`photo:${status.photoId}`, 'CSV'))),
    progressBar(status.progress, { large: true, status: status.status }),
    h('dl', { class: 'facts' },
      fact('Owner', ctx.me.permissions.includes('support:read') || ctx.me.permissions.includes('admin')
        ? h('a', { href: `#/user/${enc(status.userId)}` }, status.userId) : status.userId),
      fact('Last update', when(status.updatedAt)),
      fact('Last event', typeLabel(status.lastEventType), h('span', { class: 'muted' }, ` seq ${status.lastSeq}`)),
      fact('Events kept', kept)),
    status.error ? callout('danger', 'Processing failed', status.error) : null);
}

function timelineCard(room, info, ctx) {
  const state = { order: 'oldest', page: 0, size: PAGE_SIZES[0] };
  const total = Math.max(0, info.headSeq - info.oldestSeq + 1);
  const tbody = h('tbody');
  const label = h('span', { class: 'pager-label' });
  const prev = h('button', { class: 'secondary', onclick: () => { state.page -= 1; load(); } }, '‹ Prev');
  const next = h('button', { class: 'secondary', onclick: () => { state.page += 1; load(); } }, 'Next ›');
  const orderButtons = ['oldest', 'newest'].map((order) => h('button', {
    class: 'seg', 'data-order': order,
    onclick: () => { state.order = order; state.page = 0; load(); },
  }, order === 'oldest' ? 'Oldest first' : 'Newest first'));
  const size = h('select', {
    'aria-label': 'Events per page',
    onchange: () => { state.size = Number(size.value); state.page = 0; load(); },
  }, PAGE_SIZES.map((n) => h('option', { value: n }, `${n} per page`)));
  const pruned = info.oldestSeq > 1 ? prunedRow(1, info.oldestSeq - 1, 'pruned by retention; the status above still counts them') : null;

  async function load() {
    const pages = Math.max(1, Math.ceil(total / state.size));
    state.page = Math.max(0, Math.min(state.page, pages - 1));
    for (const b of orderButtons) b.classList.toggle('active', b.dataset.order === state.order);
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
    if (total === 0) {
      tbody.replaceChildren(pruned ?? h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No events.')));
      label.textContent = 'No events kept';
      return;
    }
    let lo;
    let hi;
    if (state.order === 'oldest') {
      lo = info.oldestSeq + state.page * state.size;
      hi = Math.min(info.headSeq, lo + state.size - 1);
    } else {
      hi = info.headSeq - state.page * state.size;
      lo = Math.max(info.oldestSeq, hi - state.size + 1);
    }
    label.textContent = `Seq ${lo}–${hi} · page ${state.page + 1} of ${pages} · ${total} events kept`;
    let page;
    try {
      page = await get(`rooms/${enc(room)}/events?after=${lo - 1}&limit=${hi - lo + 1}`);
    } catch (error) {
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: 7 }, problem(error, room, ctx.me))));
      return;
    }
    const events = state.order === 'oldest' ? page.events : [...page.events].reverse();
    const rows = events.flatMap((e) => eventRows(e));
    const first = state.page === 0;
    const last = state.page === pages - 1;
    if (pruned && state.order === 'oldest' && first) rows.unshift(pruned);
    if (pruned && state.order === 'newest' && last) rows.push(pruned);
    tbody.replaceChildren(...rows);
  }

  load();
  return h('section', { class: 'card timeline' },
    h('div', { class: 'card-head' },
      h('h2', {}, 'Timeline'),
      h('div', { class: 'segmented', role: 'group', 'aria-label': 'Order' }, orderButtons),
      size,
      h('div', { class: 'pager' }, label, prev, next)),
    h('table', { class: 'events' }, eventHead(), tbody));
}

// ---------------------------------------------------------------------------------------------
// Live tail

/** `p1` -> `photo:p1`; room names as they are. */
function roomOf(text) {
  return text === 'global' || text.includes(':') ? text : `photo:${text}`;
}

async function tailView(root, [roomParam], ctx) {
  const [roomName, query] = (roomParam ?? '').split('?');
  const from = h('select', { 'aria-label': 'Start from' },
    h('option', { value: 'last' }, 'Last 20 events'),
    h('option', { value: 'now' }, 'New events only'),
    h('option', { value: 'start' }, 'The beginning'));
  const form = lookupForm({
    label: 'Room', placeholder: 'photo:p1, user:u1, global, or a photo id', value: roomName, button: 'Follow',
    go: (text) => { location.hash = `#/tail/${enc(roomOf(text))}?from=${from.value}`; },
  });
  form.insertBefore(from, form.lastChild);
  root.append(pageHead('Live tail', form));
  if (!roomName) {
    root.append(emptyState('Follow a photo or any room you may read: events appear here as the hub stores them.'));
    return;
  }
  const room = roomOf(roomName);
  const start = new URLSearchParams(query ?? '').get('from') ?? 'last';
  from.value = start;
  const body = h('div', {}, loading());
  root.append(body);
  let info;
  try {
    info = await get(`rooms/${enc(room)}`);
  } catch (error) {
    body.replaceChildren(problem(error, room, ctx.me));
    return;
  }
  if (!ctx.alive()) return;
  const after = start === 'now' ? info.headSeq
    : start === 'start' ? 0 : Math.max(info.oldestSeq - 1, info.headSeq - 20);

  const pill = h('span', { class: 'pill' });
  const text = h('span', { class: 'tail-text' });
  const pauseButton = h('button', { class: 'secondary' }, 'Pause');
  const waiting = h('tr', { class: 'waiting' }, h('td', { colspan: 7 }, `Waiting for events in ${room}…`));
  const tbody = h('tbody', {}, waiting);
  const table = h('table', { class: 'events' }, eventHead(), tbody);
  const scroller = h('div', { class: 'tail-scroll' }, table);
  const notice = h('div', { class: 'tail-notice' });
  let shown = 0;
  let state = 'connecting';
  let stream = null;

  const describe = () => {
    const last = stream?.last() ?? after;
    pill.className = `pill state-${state}`;
    pill.replaceChildren(h('span', { class: 'dot' }), {
      connecting: 'Connecting', live: 'Live', reconnecting: 'Reconnecting', paused: 'Paused', stopped: 'Stopped',
    }[state]);
    text.textContent = `${room} · last seq ${last || '–'} · ${shown} shown`;
    pauseButton.textContent = state === 'paused' ? 'Resume' : 'Pause';
    pauseButton.disabled = state === 'stopped';
    notice.replaceChildren(
      state === 'paused' ? `Paused at seq ${last}. Resuming continues from seq ${last + 1}: nothing is lost.`
        : state === 'reconnecting' ? `The connection dropped; reconnecting and continuing after seq ${last}.` : '');
  };

  stream = follow({
    path: `../api/rooms/${enc(room)}/stream`,
    token,
    after,
    onEvent: ({ seq, type, payload }) => {
      const { eventId, timestamp, ...data } = payload;
      delete data.room;
      delete data.seq;
      const nearBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 40;
      waiting.remove();
      tbody.append(...eventRows({ seq, type, timestamp, eventId, data }, { fresh: seq > info.headSeq }));
      shown += 1;
      if (nearBottom) scroller.scrollTop = scroller.scrollHeight;
      describe();
    },
    onTruncated: ({ requestedSeq, oldestSeq }) => {
      waiting.remove();
      tbody.append(requestedSeq < oldestSeq
        ? prunedRow(requestedSeq, oldestSeq - 1, `pruned by retention; continuing from seq ${oldestSeq}`)
        : h('tr', { class: 'pruned' }, h('td', { colspan: 7 },
          `Seq ${requestedSeq} is past the room's head (the store was replaced); continuing from seq ${oldestSeq}.`)));
    },
    onState: (next) => { state = next; describe(); },
    onRefused: (status, errorBody) => body.prepend(problem(new ApiError(status, errorBody), room, ctx.me)),
    onExpired: () => ctx.expired(),
  });
  pauseButton.addEventListener('click', () => (state === 'paused' ? stream.resume() : stream.pause()));
  ctx.onLeave(() => stream.stop());
  ctx.onHubBack(() => stream.resume());
  describe();
  body.replaceChildren(h('section', { class: 'card tail' },
    h('div', { class: 'card-head' }, pill, text, h('div', { class: 'actions' }, pauseButton,
      h('button', { class: 'secondary', onclick: () => { tbody.replaceChildren(waiting); shown = 0; describe(); } }, 'Clear'))),
    notice, scroller));
}

// ---------------------------------------------------------------------------------------------
// A user's photos

const PHOTO_EVENTS = new Set(['photo.uploaded', 'photo.processing.completed', 'photo.processing.failed', 'photo.deleted']);
const USER_PAGE = 50;

async function userView(root, [userId], ctx) {
  root.append(pageHead('User', lookupForm({
    label: 'User id', placeholder: 'User id, e.g. u1', value: userId, button: 'Show photos',
    go: (id) => { location.hash = `#/user/${enc(id)}`; },
  })));
  if (!userId) {
    root.append(emptyState('Enter a user id to list their photos and where each one stands.'));
    return;
  }
  const body = h('div', {}, loading());
  root.append(body);
  const room = `user:${userId}`;
  let events;
  let info;
  try {
    [info, events] = await Promise.all([get(`rooms/${enc(room)}`), allEvents(room)]);
  } catch (error) {
    body.replaceChildren(problem(error, `the photos of user “${userId}”`, ctx.me));
    return;
  }
  if (!ctx.alive()) return;
  const photos = new Map();
  for (const e of events) {
    const id = e.data?.photoId;
    if (!id || !PHOTO_EVENTS.has(e.type)) continue;
    const p = photos.get(id) ?? { id, uploaded: null, lastType: e.type, lastAt: e.timestamp };
    if (e.type === 'photo.uploaded' && !p.uploaded) p.uploaded = e.timestamp;
    p.lastType = e.type;
    p.lastAt = e.timestamp;
    photos.set(id, p);
  }
  const list = [...photos.values()].sort((a, b) => new Date(b.lastAt) - new Date(a.lastAt));
  const tbody = h('tbody');
  const more = h('button', { class: 'secondary' }, `Show ${USER_PAGE} more`);
  let shown = 0;
  const showMore = () => {
    const slice = list.slice(shown, shown + USER_PAGE);
    shown += slice.length;
    more.hidden = shown >= list.length;
    const rows = slice.map((p) => {
      const status = h('td', {}, h('span', { class: 'muted' }, '…'));
      const progress = h('td', {});
      const updated = h('td', {}, when(p.lastAt));
      const row = h('tr', {},
        h('td', {}, h('a', { href: `#/photo/${enc(p.id)}` }, h('code', {}, p.id))),
        status, progress,
        h('td', {}, p.uploaded ? when(p.uploaded) : h('span', { class: 'muted' }, 'pruned')),
        updated,
        h('td', {}, typeLabel(p.lastType)));
      return { p, row, status, progress, updated };
    });
    tbody.append(...rows.map((r) => r.row));
    fillStatuses(rows);
  };
  more.addEventListener('click', showMore);
  const fillStatuses = async (rows) => {
    const queue = [...rows];
    const worker = async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        try {
          const s = await get(`photos/${enc(r.p.id)}/status`);
          r.status.replaceChildren(statusBadge(s.status));
          r.progress.replaceChildren(progressBar(s.progress, { status: s.status }));
          r.updated.replaceChildren(when(s.updatedAt));
        } catch (error) {
          r.status.replaceChildren(h('span', { class: 'muted' }, error.status === 404 ? 'forgotten' : 'unavailable'));
        }
      }
    };
    await Promise.all(Array.from({ length: STATUS_CONCURRENCY }, worker));
  };
  body.replaceChildren(h('section', { class: 'card' },
    h('div', { class: 'card-head' },
      h('h2', {}, 'Photos of ', h('code', {}, userId)),
      h('span', { class: 'muted' }, `${list.length} photo${list.length === 1 ? '' : 's'} in ${room}`),
      h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/tail/${enc(room)}` }, h('span', { class: 'dot live' }), 'Live tail'))),
    list.length
      ? h('table', { class: 'photos' },
        h('thead', {}, h('tr', {}, ['Photo', 'Status', 'Progress', 'Uploaded', 'Last update', 'Last event'].map((t) => h('th', {}, t)))),
        tbody)
      : emptyState(`No photos: nothing is stored in ${room}.`),
    info.oldestSeq > 1 ? h('p', { class: 'note' }, h('span', { class: 'pruned-icon' }, '✂'),
      ` ${seqRange(1, info.oldestSeq - 1)} of ${room} ${info.oldestSeq === 2 ? 'was' : 'were'} pruned by retention: a photo none of whose events are kept there is not listed (look it up by id).`) : null,
    more));
  showMore();
}

// ---------------------------------------------------------------------------------------------
// Hub overview

/** A photo room opens its photo view; another room, its tail from the start. */
function roomLink(room) {
  return room.startsWith('photo:') ? `#/photo/${enc(room.slice(6))}` : `#/tail/${enc(room)}?from=start`;
}

function stat(label, value, note) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value),
    note ? h('div', { class: 'stat-note' }, note) : null);
}

async function hubView(root, _params, ctx) {
  const updated = h('span', { class: 'muted' });
  root.append(pageHead('Hub overview', updated));
  const body = h('div', {}, loading());
  root.append(body);
  const render = async () => {
    let o;
    try {
      o = await get('overview');
    } catch (error) {
      body.replaceChildren(problem(error, 'the hub overview', ctx.me));
      return;
    }
    if (!ctx.alive()) return;
    const oldest = o.store.oldestEvent;
    const run = o.retention.lastRun;
    const busUp = o.bus.status === 'up';
    updated.textContent = `Updated ${localTime(o.timestamp)} · refreshes every ${OVERVIEW_REFRESH_MS / 1000} s · up ${duration(o.uptimeSeconds)}`;
    body.replaceChildren(h('div', { class: 'grid' },
      h('section', { class: 'card' }, h('h2', {}, 'Clients'),
        h('div', { class: 'stats' }, stat('Socket.IO clients', o.clients.sockets), stat('SSE streams', o.clients.streams))),
      h('section', { class: 'card' }, h('h2', {}, 'Rooms'),
        h('div', { class: 'stats' }, stat('With subscribers', o.rooms.subscribed), stat('Keeping events', o.rooms.kept))),
      h('section', { class: 'card' }, h('h2', {}, 'Bus'),
        h('div', { class: 'stats' }, stat('Type', o.bus.type),
          stat('State', h('span', { class: `badge ${busUp ? 'status-completed' : 'status-failed'}` }, o.bus.status)))),
      h('section', { class: 'card' }, h('h2', {}, 'Store'),
        h('div', { class: 'stats' }, stat('Size on disk', bytes(o.store.sizeOnDiskBytes)), stat('Schema', `v${o.store.schemaVersion}`)),
        h('dl', { class: 'facts' }, fact('Epoch', h('code', {}, o.store.epoch)))),
      h('section', { class: 'card' }, h('h2', {}, 'Oldest kept event'),
        oldest
          ? h('div', { class: 'stats' }, stat('Stored', localTime(oldest.timestamp), relative(oldest.timestamp)),
            stat('Where', h('a', { href: roomLink(oldest.room) }, oldest.room), `seq ${oldest.seq}`))
          : emptyState('The store keeps no events.')),
      h('section', { class: 'card' }, h('h2', {}, 'Retention'),
        h('div', { class: 'stats' },
          stat('Max age', duration(o.retention.maxAgeSeconds)),
          stat('Max events', `${o.retention.maxEventsPerRoom.toLocaleString('en')} per room`)),
        h('dl', { class: 'facts' },
          fact('Schedule', h('code', {}, o.retention.schedule)),
          fact('Last pass', !run ? 'not run since the hub started'
            : run.ok ? [when(run.finishedAt), h('span', { class: 'muted' },
              ` removed ${plural(run.eventsRemoved, 'event')} from ${run.roomsPruned} of ${plural(run.rooms, 'room')} in ${run.durationMs} ms`)]
              : [when(run.finishedAt), callout('danger', 'Failed', run.error)])))));
  };
  await render();
  const timer = setInterval(render, OVERVIEW_REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
  ctx.onHubBack(render);
}

/** The views by route name. */
export const views = { photo: photoView, tail: tailView, user: userView, hub: hubView };

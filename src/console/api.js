// The hub's HTTP API as the console uses it: the token (kept in sessionStorage only, sent to this
// hub alone), JSON requests, refusals as ApiError, and noticing when the hub goes away and comes
// back (docs/protocol.md, "HTTP read API" and "Support tools").

const TOKEN_KEY = 'socket-bridge-console-token';
const HEALTH_RETRY_MS = 2000;

/** A refused request: `status` (0 when the hub did not answer), the hub's `error`, `detail` and `reason`. */
export class ApiError extends Error {
  constructor(status, body = {}) {
    super(body.detail || body.error || `HTTP ${status}`);
    this.status = status;
    this.error = body.error ?? (status === 0 ? 'unreachable' : 'unknown');
    this.detail = body.detail ?? '';
    this.reason = body.reason ?? null;
  }

  /** Whether the token itself was refused because it expired. */
  get expired() {
    return this.status === 401 && this.reason === 'expired';
  }
}

const listeners = new Map();

/** Calls `handler(detail)` on `down`, `up`, `expired` and `signed-out`. */
export function on(name, handler) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(handler);
}

function emit(name, detail) {
  for (const handler of listeners.get(name) ?? []) handler(detail);
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  emit('signed-out');
}

/** Says that the token expired (also from a stream's `auth:expired`). */
export function expired() {
  emit('expired');
}

let down = null;

/** Whether the hub is currently not answering. */
export function hubDown() {
  return down !== null;
}

/** Notes that the hub did not answer, and polls /health until it does again. */
export function noteDown() {
  if (down) return;
  down = { since: new Date() };
  emit('down', down);
  const poll = async () => {
    try {
      const res = await fetch('../health', { cache: 'no-store' });
      if (res.ok) {
        down = null;
        emit('up');
        return;
      }
    } catch {
      /* still away */
    }
    setTimeout(poll, HEALTH_RETRY_MS);
  };
  setTimeout(poll, HEALTH_RETRY_MS);
}

/** GETs `path` (under /api/) with the token; its JSON, or throws ApiError. */
export async function get(path, { withToken = token() } = {}) {
  let res;
  try {
    res = await fetch(`../api/${path}`, {
      headers: { Authorization: `Bearer ${withToken}`, Accept: 'application/json' },
      cache: 'no-store',
    });
  } catch {
    noteDown();
    throw new ApiError(0, { detail: 'the hub is not answering' });
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const error = new ApiError(res.status, body);
    if (error.expired && withToken === token()) expired();
    throw error;
  }
  return body;
}

/** Every event of `room` after `after`, page by page (for exports). */
export async function allEvents(room, after = 0) {
  const events = [];
  for (;;) {
    const page = await get(`rooms/${encodeURIComponent(room)}/events?after=${after}&limit=1000`);
    events.push(...page.events);
    if (page.nextAfter === null || page.nextAfter === undefined) return events;
    after = page.nextAfter;
  }
}

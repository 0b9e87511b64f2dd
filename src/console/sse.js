// Following a room's SSE stream (docs/protocol.md, "Server-Sent Events") with fetch, so that the
// token goes in the Authorization header (EventSource cannot send one). The stream resumes from
// the last seq handed to `onEvent`, with Last-Event-ID: after a pause, a dropped connection or a
// hub restart nothing is lost and nothing is shown twice.

import { noteDown } from './api.js';

const MAX_BACKOFF_MS = 10000;

/**
 * Follows `path` after seq `after`. Callbacks: onEvent({ seq, type, payload }), onTruncated(notice),
 * onState('connecting' | 'live' | 'reconnecting' | 'paused' | 'stopped'), onRefused(status, body),
 * onExpired(). Returns { pause, resume, stop, last }.
 */
export function follow({ path, token, after, onEvent, onTruncated, onState, onRefused, onExpired }) {
  let last = after;
  let controller = null;
  let running = false;
  let stopped = false;
  let backoff = 500;
  let retry = null;

  function dispatch({ event, data, id }) {
    if (event === 'replay:truncated') {
      onTruncated(JSON.parse(data));
    } else if (event === 'auth:expired') {
      stop();
      onExpired();
    } else if (id !== null && /^\d+$/.test(id)) {
      const seq = Number(id);
      if (seq <= last) return;
      last = seq;
      onEvent({ seq, type: event, payload: JSON.parse(data) });
    }
  }

  async function read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let pending = { event: 'message', data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, '');
        buffer = buffer.slice(end + 1);
        if (line === '') {
          if (pending.data.length) dispatch({ ...pending, data: pending.data.join('\n') });
          pending = { event: 'message', data: [], id: null };
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') pending.event = value;
          else if (field === 'data') pending.data.push(value);
          else if (field === 'id') pending.id = value;
        }
      }
    }
  }

  async function connect() {
    running = true;
    controller = new AbortController();
    const signal = controller.signal;
    onState(backoff > 500 ? 'reconnecting' : 'connecting');
    try {
      const res = await fetch(path, {
        headers: { Authorization: `Bearer ${token()}`, 'Last-Event-ID': String(last), Accept: 'text/event-stream' },
        cache: 'no-store',
        signal,
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        running = false;
        stopped = true;
        onState('stopped');
        onRefused(res.status, body);
        return;
      }
      onState('live');
      backoff = 500;
      await read(res.body);
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof TypeError) noteDown();
    }
    if (signal.aborted || stopped) return;
    // The connection ended (hub restart, network): come back from the last seq shown.
    running = false;
    onState('reconnecting');
    retry = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }

  function halt() {
    clearTimeout(retry);
    controller?.abort();
    running = false;
  }

  function pause() {
    if (stopped) return;
    halt();
    onState('paused');
  }

  function resume() {
    if (stopped || running) return;
    clearTimeout(retry);
    backoff = 500;
    connect();
  }

  function stop() {
    stopped = true;
    halt();
    onState('stopped');
  }

  connect();
  return { pause, resume, stop, last: () => last };
}

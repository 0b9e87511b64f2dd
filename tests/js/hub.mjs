// Helpers for the end-to-end suite: run the real `socket-bridge` binary, mint tokens, publish
// events over HTTP, and drive official socket.io-client sockets that record what they receive.
// Every wait has a timeout; every hub, child process and socket is tracked so that nothing leaks.
// Each test file starts its shared hub with `useHub()`, which also registers the cleanup after it.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The binary under test: `$SOCKET_BRIDGE_BIN`, else the debug build of the repository. */
export const BIN = process.env.SOCKET_BRIDGE_BIN
  ? path.resolve(process.env.SOCKET_BRIDGE_BIN)
  : path.resolve(here, '../../target/debug/socket-bridge');

/** The HS256 secret the hubs of this suite are started with (over 32 characters). */
export const SECRET = `socket-bridge-e2e-secret-${randomBytes(12).toString('hex')}`;

/** How long any single wait may take unless a test says otherwise. */
export const WAIT_MS = 4000;

/** Settings read from the environment that must not leak from the caller's shell into a hub. */
const HUB_ENV = [
  'LISTEN_ADDR', 'DATA_DIR', 'JWT_SECRET', 'NATS_URL', 'ALLOWED_ORIGINS', 'SOCKET_PING_TIMEOUT',
  'SOCKET_PING_INTERVAL', 'SOCKET_MAX_BUFFER_SIZE', 'SOCKET_CORS_CREDENTIALS', 'SOCKET_QUEUE_PACKETS',
  'SLOW_CLIENT_TIMEOUT', 'INSECURE_DEV_AUTH', 'RETENTION_MAX_AGE', 'RETENTION_MAX_EVENTS',
  'PRUNE_SCHEDULE', 'RUST_LOG', 'LOG_FORMAT', 'SOCKET_REQUESTS_PER_SECOND', 'SOCKET_REQUEST_BURST',
  'MAX_RESUME_ROOMS', 'HTTP_HEADER_TIMEOUT', 'HTTP_BODY_TIMEOUT',
];

const children = new Set();
const hubs = new Set();
const sockets = new Set();

function killChildren() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

// Never leave a hub running when the test process goes away, normally or by a signal.
process.on('exit', killChildren);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killChildren();
    process.kill(process.pid, signal);
  });
}

// And when it dies without running any handler (SIGKILL, or the runner going away): a detached
// watchdog holds a pipe from this process; when the pipe closes it kills the hubs it was told
// about (after checking /proc that the pid is still that hub) and removes their data dirs.
const WATCHDOG = `
const fs = require('node:fs');
const live = new Map();
let buf = '';
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buf += chunk;
  let i;
  while ((i = buf.indexOf('\\n')) !== -1) {
    const msg = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    if (msg.add) live.set(msg.add, msg); else live.delete(msg.remove);
  }
});
process.stdin.on('close', () => {
  for (const [pid, { dir, owned }] of live) {
    try {
      if (fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
    } catch {}
    if (owned) {
      try { fs.rmSync(dir, { recursive: true, force: true }); } catch {}
    }
  }
  process.exit(0);
});
`;
let watchdog;

function watch(message) {
  if (!watchdog) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    watchdog.on('error', () => {});
    watchdog.stdin.on('error', () => {});
    watchdog.unref();
    watchdog.stdin.unref();
  }
  watchdog.stdin.write(`${JSON.stringify(message)}\n`);
}

/** Resolves with `promise`, or rejects after `ms` with a message naming what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The integers `from..=to` (empty when `to < from`). */
export const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

let counter = 0;
/** A fresh identifier (valid as photo, user, client id) unique within this run. */
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}-${randomBytes(3).toString('hex')}`;
}

/** RFC 3339 UTC with milliseconds, as the contract requires of every timestamp. */
export const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// ---------------------------------------------------------------------------------------------
// Tokens

const b64url = (value) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

const nowSecs = () => Math.floor(Date.now() / 1000);

/** Signs `claims` as a JWT. `alg` may be HS256 (the only one the hub accepts), HS384, HS512 or none. */
export function signJwt(claims, { secret = SECRET, alg = 'HS256' } = {}) {
  const input = `${b64url({ alg, typ: 'JWT' })}.${b64url(claims)}`;
  if (alg === 'none') return `${input}.`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  if (!hash) throw new Error(`unsupported alg ${alg}`);
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** A valid token for `sub` with `permissions`, valid for an hour. */
export function token(sub, permissions = ['read:photos'], { ttlSecs = 3600, ...opts } = {}) {
  return signJwt({ sub, exp: nowSecs() + ttlSecs, permissions }, opts);
}

/** Tokens the hub must refuse. */
export const badTokens = {
  garbage: () => 'definitely-not-a-jwt',
  // Ten minutes past `exp`: well beyond the 60 s clock-skew leeway.
  expired: (sub = 'u-bad') => signJwt({ sub, exp: nowSecs() - 600, permissions: ['read:photos'] }),
  longExpired: (sub = 'u-bad') => signJwt({ sub, exp: 1000, permissions: ['read:photos'] }),
  noExp: (sub = 'u-bad') => signJwt({ sub, permissions: ['read:photos'] }),
  wrongSecret: (sub = 'u-bad') =>
    token(sub, ['read:photos'], { secret: 'another-secret-that-is-also-long-enough-1234' }),
  algNone: (sub = 'u-bad') =>
    signJwt({ sub, exp: nowSecs() + 3600, permissions: ['read:photos'] }, { alg: 'none' }),
  hs384: (sub = 'u-bad') =>
    signJwt({ sub, exp: nowSecs() + 3600, permissions: ['read:photos'] }, { alg: 'HS384' }),
};

/** A token allowed to publish over HTTP. */
export const publisherToken = () => token('publisher', ['events:publish']);

// ---------------------------------------------------------------------------------------------
// The hub process

async function checkBinary() {
  try {
    await access(BIN, constants.X_OK);
  } catch {
    throw new Error(
      `socket-bridge binary not found (or not executable) at ${BIN}. ` +
        'Build it with `cargo build --bin socket-bridge` in the repository root, ' +
        'or set SOCKET_BRIDGE_BIN to its absolute path.',
    );
  }
}

/**
 * Starts `socket-bridge serve` on a free port with a fresh data dir (or `dataDir`), JSON logs, and
 * waits for its "socket-bridge listening" line.
 */
export async function startHub({ dataDir, secret = SECRET, env = {}, args = [], ownsDir } = {}) {
  await checkBinary();
  const owns = ownsDir ?? !dataDir;
  const dir = dataDir ?? (await mkdtemp(path.join(tmpdir(), 'socket-bridge-e2e-')));
  const childEnv = { ...process.env };
  for (const name of HUB_ENV) delete childEnv[name];
  Object.assign(childEnv, { LOG_FORMAT: 'json', RUST_LOG: 'info' }, env);
  const child = spawn(
    BIN,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, '--jwt-secret', secret, ...args],
    { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  if (child.pid) watch({ add: child.pid, dir, owned: owns });
  const hub = new Hub(child, dir, secret, owns, { env, args });
  hubs.add(hub);
  try {
    await hub.ready;
  } catch (e) {
    await hub.close();
    throw e;
  }
  return hub;
}

export class Hub {
  constructor(child, dataDir, secret, ownsDir, startOptions) {
    this.child = child;
    this.dataDir = dataDir;
    this.secret = secret;
    this.ownsDir = ownsDir;
    this.startOptions = startOptions;
    /** Parsed JSON log lines, in order (non-JSON lines as `{ raw }`). */
    this.logs = [];
    this.stderr = '';
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        children.delete(child);
        watch({ remove: child.pid });
        resolve({ code, signal });
      });
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-20000);
    });
    const lines = readline.createInterface({ input: child.stdout });
    this.ready = withTimeout(
      new Promise((resolve, reject) => {
        lines.on('line', (line) => {
          let entry;
          try {
            entry = JSON.parse(line);
          } catch {
            entry = { raw: line };
          }
          this.logs.push(entry);
          if (this.logs.length > 5000) this.logs.shift();
          if (entry.fields?.message === 'socket-bridge listening') {
            this.addr = entry.fields.addr;
            this.epoch = entry.fields.epoch;
            this.url = `http://${this.addr}`;
            resolve(this);
          }
        });
        this.exited.then(({ code, signal }) =>
          reject(
            new Error(
              `socket-bridge exited (code ${code}, signal ${signal}) before listening\n` +
                `stdout: ${this.logs.map((l) => JSON.stringify(l)).join('\n')}\nstderr: ${this.stderr}`,
            ),
          ),
        );
      }),
      10000,
      '"socket-bridge listening" in the log',
    );
  }

  /** Whether the process is still running. */
  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then the exit status `{ code, signal }` (must come within `ms`). */
  async terminate(ms = 8000) {
    if (this.running) this.child.kill('SIGTERM');
    return withTimeout(this.exited, ms, 'socket-bridge to exit after SIGTERM');
  }

  /** SIGTERM and require a clean exit (code 0), as the contract's shutdown promises. */
  async stop() {
    const { code, signal } = await this.terminate();
    if (code !== 0) {
      throw new Error(
        `socket-bridge exited with code ${code} (signal ${signal}) after SIGTERM\nstderr: ${this.stderr}`,
      );
    }
  }

  /** A new hub on the same data dir (and secret); this one must be stopped first. */
  async restart(options = {}) {
    if (this.running) await this.stop();
    const next = await startHub({
      ...this.startOptions,
      ...options,
      dataDir: this.dataDir,
      secret: this.secret,
      ownsDir: this.ownsDir,
    });
    this.ownsDir = false; // the new hub cleans the directory up
    return next;
  }

  /** Kills the process if it still runs and removes the data dir it owns. Safe to call twice. */
  async close() {
    hubs.delete(this);
    if (this.running) {
      this.child.kill('SIGKILL');
      await withTimeout(this.exited, 5000, 'socket-bridge to die after SIGKILL').catch(() => {});
    }
    if (this.ownsDir) {
      this.ownsDir = false;
      await rm(this.dataDir, { recursive: true, force: true });
    }
  }

  /** An HTTP request; resolves `{ status, headers, body }` with `body` parsed when it is JSON. */
  async request(method, urlPath, { token: bearer, body, headers = {}, raw = false } = {}) {
    const h = { ...headers };
    if (bearer) h.authorization = `Bearer ${bearer}`;
    let payload;
    if (body !== undefined) {
      payload = raw ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const res = await withTimeout(
      fetch(`${this.url}${urlPath}`, { method, headers: h, body: payload }),
      WAIT_MS * 2,
      `${method} ${urlPath}`,
    );
    const text = await res.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, body: parsed };
  }

  get(urlPath, bearer, options = {}) {
    return this.request('GET', urlPath, { token: bearer, ...options });
  }

  /** POST /api/events with a publisher token; returns the `events` receipts, throws unless 200. */
  async publish(events) {
    const res = await this.request('POST', '/api/events', { token: publisherToken(), body: events });
    if (res.status !== 200) {
      throw new Error(`POST /api/events answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
    return res.body.events;
  }

  /** Publishes one event and returns its receipt `{ eventId, rooms }`. */
  async publishOne(event) {
    const [receipt] = await this.publish(event);
    return receipt;
  }

  /** Publishes a global marker and waits for `client` to receive it: everything before it has arrived. */
  async drain(client) {
    const id = uid('marker');
    await this.publishOne(ev.maintenance({ marker: true }, { id }));
    await client.waitFor('system.maintenance', (d) => d.eventId === id);
  }

  /** A socket.io-client socket to this hub, not yet connected (call `open()`). */
  client(auth, options) {
    return new Client(this.url, auth, options);
  }

  /**
   * A connected socket for `user` (a fresh clientId unless given), once it has received
   * `connection:established`; fails if refused.
   */
  async connect(user, { permissions = ['read:photos'], ...auth } = {}, options) {
    const client = this.client({ token: token(user, permissions), clientId: uid('c'), ...auth }, options);
    await client.open();
    await client.waitFor('connection:established');
    return client;
  }
}

// ---------------------------------------------------------------------------------------------
// Events

/** An event of `type` with `data`, and the top-level fields in `extra` (`id`, `timestamp`, ...). */
const event = (type, data, extra) => ({ type, data, ...extra });

export const ev = {
  uploaded: (photoId, userId, data = {}, extra = {}) => event('photo.uploaded', { photoId, userId, ...data }, extra),
  started: (photoId, data = {}, extra = {}) => event('photo.processing.started', { photoId, ...data }, extra),
  progress: (photoId, progress, data = {}, extra = {}) =>
    event('photo.processing.progress', { photoId, progress, ...data }, extra),
  completed: (photoId, data = {}, extra = {}) => event('photo.processing.completed', { photoId, ...data }, extra),
  failed: (photoId, error, data = {}, extra = {}) =>
    event('photo.processing.failed', { photoId, error, ...data }, extra),
  deleted: (photoId, data = {}, extra = {}) => event('photo.deleted', { photoId, ...data }, extra),
  maintenance: (data = {}, extra = {}) => event('system.maintenance', data, extra),
  health: (data = {}, extra = {}) => event('system.health', data, extra),
};

// ---------------------------------------------------------------------------------------------
// Sockets

/**
 * A socket.io-client socket (websocket transport, no reconnection) that records every event it
 * receives, in order, as `{ event, args, data }` (`data` = first argument). `connect`,
 * `connect_error` and `disconnect` are recorded too.
 */
export class Client {
  constructor(url, auth, options = {}) {
    this.received = [];
    this.listeners = new Set();
    this.socket = io(url, {
      auth,
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      autoConnect: false,
      timeout: WAIT_MS,
      ...options,
    });
    sockets.add(this);
    this.socket.onAny((event, ...args) => this.record(event, args));
    for (const reserved of ['connect', 'connect_error', 'disconnect']) {
      this.socket.on(reserved, (...args) => this.record(reserved, args));
    }
  }

  record(event, args) {
    this.received.push({ event, args, data: args[0] });
    for (const listener of [...this.listeners]) listener();
  }

  /**
   * Waits until `check()` returns something truthy (re-checked after every received event, and
   * every 20 ms for state that changes without an event) and resolves with it.
   */
  until(check, what, ms = WAIT_MS) {
    let listener;
    let poll;
    return withTimeout(
      new Promise((resolve, reject) => {
        listener = () => {
          try {
            const value = check();
            if (value) resolve(value);
          } catch (e) {
            reject(e);
          }
        };
        this.listeners.add(listener);
        poll = setInterval(listener, 20);
        listener();
      }),
      ms,
      `${what}`,
    )
      .catch((e) => {
        if (e.message.startsWith('timed out')) e.message += `; received so far: ${this.describe()}`;
        throw e;
      })
      .finally(() => {
        clearInterval(poll);
        this.listeners.delete(listener);
      });
  }

  /** The first recorded `event` (after index `from`) whose data satisfies `pred`. */
  find(event, pred = () => true, from = 0) {
    return this.received.slice(from).find((r) => r.event === event && pred(r.data));
  }

  /** Waits for an `event` whose data satisfies `pred`; resolves with its data. */
  async waitFor(event, pred = () => true, ms = WAIT_MS) {
    const hit = await this.until(() => this.find(event, pred), `event "${event}"`, ms);
    return hit.data;
  }

  /** Recorded delivered events of `room` (payloads with `eventId` and that `room`), as `{ event, data }`. */
  inRoom(room) {
    return this.received.filter(
      (r) => r.data && typeof r.data === 'object' && r.data.room === room && 'eventId' in r.data,
    );
  }

  /** The seqs received in `room`, in arrival order. */
  seqs(room) {
    return this.inRoom(room).map((r) => r.data.seq);
  }

  /** Waits until the seqs of `room` reach `count` entries; returns them. */
  async waitForSeqs(room, count, ms = WAIT_MS) {
    await this.until(() => this.seqs(room).length >= count, `${count} events in ${room}`, ms);
    return this.seqs(room);
  }

  index() {
    return this.received.length;
  }

  describe() {
    const items = this.received.map((r) => {
      const d = r.data;
      if (d && typeof d === 'object' && 'room' in d) return `${r.event}[${d.room}#${d.seq ?? '-'}]`;
      if (d instanceof Error) return `${r.event}(${d.message})`;
      return r.event;
    });
    return items.length > 60 ? `... ${items.slice(-60).join(', ')}` : items.join(', ') || '(nothing)';
  }

  /** Connects and resolves with the outcome, the `connect` or `connect_error` it recorded. */
  handshake(what, ms) {
    const from = this.index();
    this.socket.connect();
    return this.until(
      () => this.received.slice(from).find((x) => x.event === 'connect' || x.event === 'connect_error'),
      what,
      ms,
    );
  }

  /** Connects; resolves once connected, rejects with the connect_error. */
  async open(ms = WAIT_MS) {
    const r = await this.handshake('connect', ms);
    if (r.event === 'connect_error') throw r.data;
    return this;
  }

  /** Connects expecting a refusal; resolves with the connect_error's Error. */
  async refused(ms = WAIT_MS) {
    const r = await this.handshake('connect_error', ms);
    if (r.event === 'connect') throw new Error('the handshake was accepted but should have been refused');
    return r.data;
  }

  /** Emits with an ack callback and resolves with the ack's first argument. */
  ack(event, ...args) {
    return withTimeout(this.socket.timeout(WAIT_MS).emitWithAck(event, ...args), WAIT_MS + 500, `ack of ${event}`);
  }

  emit(event, ...args) {
    this.socket.emit(event, ...args);
  }

  /** Round trip: `ping` and wait for the `pong` it causes; proves the socket is still served. */
  async ping() {
    const from = this.index();
    this.emit('ping', { at: Date.now() });
    const hit = await this.until(() => this.find('pong', () => true, from), 'pong after ping');
    return hit.data;
  }

  get connected() {
    return this.socket.connected;
  }

  close() {
    this.socket.removeAllListeners();
    this.socket.offAny();
    this.socket.disconnect();
    sockets.delete(this);
  }
}

/** Closes every socket still open, then every hub started and not closed yet (an `after` hook). */
export async function closeAll() {
  for (const client of [...sockets]) client.close();
  for (const hub of [...hubs]) await hub.close();
}

/**
 * The shared hub of a test file (`const hub = await useHub();` at its top): started with `options`
 * as `startHub` takes them, after registering `closeAll` to run once the file's tests are done.
 */
export async function useHub(options) {
  after(closeAll);
  return startHub(options);
}

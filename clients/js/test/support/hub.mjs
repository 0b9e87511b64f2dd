// The real socket-bridge binary for the client's tests, as tests/js/hub.mjs runs it: a hub on a
// port (a free one, or a given one for a restart), its data dir, HS256 tokens signed with the
// secret it was started with, and events published over HTTP. Every hub is killed when the test
// process exits.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The binary under test: `$SOCKET_BRIDGE_BIN`, else the repository's debug build. */
export const BIN = path.resolve(process.env.SOCKET_BRIDGE_BIN ?? path.join(here, '../../../../target/debug/socket-bridge'));

/** The HS256 secret every hub of the run is started with. */
export const SECRET = `socket-bridge-client-test-${randomBytes(12).toString('hex')}`;

/** Settings a hub reads from the environment that must not leak in from the caller's shell. */
const HUB_ENV = [
  'LISTEN_ADDR', 'DATA_DIR', 'JWT_SECRET', 'NATS_URL', 'ALLOWED_ORIGINS', 'SOCKET_PING_TIMEOUT',
  'SOCKET_PING_INTERVAL', 'INSECURE_DEV_AUTH', 'RETENTION_MAX_AGE', 'RETENTION_MAX_EVENTS', 'PRUNE_SCHEDULE',
  'TOKEN_LEEWAY', 'MAX_CONNECTIONS', 'RUST_LOG', 'LOG_FORMAT',
];

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A token for `sub`, expiring `ttlSecs` from now (negative: already past `exp`). */
export function token(sub, permissions = ['read:photos'], { ttlSecs = 3600 } = {}) {
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + ttlSecs, permissions };
  const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

let counter = 0;
/** A fresh id, unique within the run. */
export const uid = (prefix) => `${prefix}-${(counter += 1)}-${randomBytes(3).toString('hex')}`;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Events to publish, in the shape `POST /api/events` takes. */
export const ev = {
  uploaded: (photoId, userId) => ({ type: 'photo.uploaded', data: { photoId, userId } }),
  progress: (photoId, progress) => ({ type: 'photo.processing.progress', data: { photoId, progress } }),
  completed: (photoId) => ({ type: 'photo.processing.completed', data: { photoId } }),
  maintenance: (data = {}) => ({ type: 'system.maintenance', data }),
};

/** A new temporary data dir; `remove()` deletes it. */
export async function makeDataDir() {
  const dir = await mkdtemp(path.join(tmpdir(), 'socket-bridge-client-'));
  return { path: dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Starts `socket-bridge serve` on `port` (0: a free one) with `dataDir` (default: a new temporary
 * one, removed by `close()`), and waits until it listens.
 */
export async function startHub({ port = 0, dataDir, env = {} } = {}) {
  const dir = dataDir ?? (await makeDataDir()).path;
  const childEnv = { ...process.env };
  for (const name of HUB_ENV) delete childEnv[name];
  Object.assign(childEnv, { LOG_FORMAT: 'json', RUST_LOG: 'info' }, env);
  const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dir, '--jwt-secret', SECRET], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const hub = new Hub(child, dir, dataDir === undefined);
  await hub.ready;
  return hub;
}

export class Hub {
  constructor(child, dataDir, ownsDir) {
    this.child = child;
    this.dataDir = dataDir;
    this.ownsDir = ownsDir;
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    this.exited = new Promise((resolve) => child.once('exit', () => resolve(running.delete(child))));
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket-bridge did not listen within 10 s: ${stderr}`)), 10_000);
      this.exited.then(() => reject(new Error(`socket-bridge exited before listening: ${stderr}`)));
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        let fields;
        try {
          fields = JSON.parse(line).fields;
        } catch {
          return;
        }
        if (fields?.message !== 'socket-bridge listening') return;
        clearTimeout(timer);
        this.port = Number(fields.addr.split(':').pop());
        this.url = `http://${fields.addr}`;
        this.epoch = fields.epoch;
        resolve(this);
      });
    });
  }

  /** SIGKILL: the hub dies without a word to its clients. */
  async kill() {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Kills the hub if it still runs and removes the data dir it created. */
  async close() {
    if (this.child.exitCode === null && this.child.signalCode === null) await this.kill();
    if (this.ownsDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  /** `POST /api/events`; resolves with the receipts `[{ eventId, rooms }]`. */
  async publish(events) {
    const res = await fetch(`${this.url}/api/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token('publisher', ['events:publish'])}`, 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    const body = await res.json();
    if (res.status !== 200) throw new Error(`POST /api/events answered ${res.status}: ${JSON.stringify(body)}`);
    return body.events;
  }
}

// The soak's traffic and its final checks (benches/soak/run.sh starts it; docs/reliability.md,
// "Soak with faults", explains the figures). For --minutes it runs:
//  - an HTTP producer and a NATS JetStream producer, each retrying every event it has not had
//    acknowledged, with the same id, until it is (an HTTP 200; a JetStream publish ack);
//  - --clients official socket.io-client sockets, each following its user's rooms, its photos'
//    rooms and `global` with `auth.resume`, dropping and reconnecting at random, and reconnecting
//    with `resume` when the hub goes away;
// then it stops producing, waits for the clients to catch up, and checks that
//  - every acknowledged event is stored exactly once (history API), and every room's stored seqs
//    are 1..head with no gap or repeat;
//  - every client saw every seq of each of its rooms exactly once, in order, across all its
//    reconnects (gap-free and duplicate-free).
// It prints one JSON summary line and exits non-zero when a check fails.

import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import { io } from 'socket.io-client';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v ?? 'true'];
  }),
);
const URL = args.url ?? 'http://127.0.0.1:8080';
const NATS = args.nats ?? '127.0.0.1:4222';
const SECRET = args.secret ?? process.env.JWT_SECRET;
const MINUTES = Number(args.minutes ?? 20);
const CLIENTS = Number(args.clients ?? 16);
const USERS = 4;
const PHOTOS = 12;
const SETTLE_MS = Number(args['settle-s'] ?? 120) * 1000;
const run = randomBytes(3).toString('hex');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg, fields = {}) =>
  console.error(JSON.stringify({ t: new Date().toISOString(), msg, ...fields }));

// ------------------------------------------------------------------------------------------
// Tokens (HS256, as docs/protocol.md "Tokens and permissions")

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
function token(sub, permissions) {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 4 * 3600, permissions })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}
const PRODUCER = token('soak-producer', ['events:publish']);
const ADMIN = token('soak-admin', ['admin']);

const users = Array.from({ length: USERS }, (_, i) => `soak-${run}-u${i}`);
const photos = Array.from({ length: PHOTOS }, (_, i) => ({ id: `soak-${run}-p${i}`, owner: users[i % USERS] }));

// ------------------------------------------------------------------------------------------
// Producers

const acked = new Map(); // eventId -> { via, photoId? , global? }
const stats = { httpAttempts: 0, httpErrors: {}, httpAcked: 0, natsAttempts: 0, natsErrors: {}, natsAcked: 0 };
const bump = (o, k) => { o[k] = (o[k] ?? 0) + 1; };
let seqNo = 0;

function nextEvent(via) {
  seqNo += 1;
  const photo = photos[seqNo % PHOTOS];
  const id = `soak-${run}-${via}-${seqNo}`;
  const r = seqNo % 10;
  if (r === 0) return { id, type: 'system.maintenance', data: { note: `n${seqNo}` }, room: 'global' };
  const type = r === 1 ? 'photo.processing.completed' : 'photo.processing.progress';
  const data = { photoId: photo.id, ...(type === 'photo.processing.progress' ? { progress: seqNo % 101 } : {}) };
  return { id, type, data, room: `photo:${photo.id}` };
}

async function postEvents(events) {
  stats.httpAttempts += 1;
  try {
    const res = await fetch(`${URL}/api/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PRODUCER}`, 'content-type': 'application/json' },
      body: JSON.stringify(events.map(({ id, type, data }) => ({ id, type, data }))),
      signal: AbortSignal.timeout(10_000),
    });
    await res.text();
    if (res.status === 200) return true;
    bump(stats.httpErrors, String(res.status));
  } catch (e) {
    bump(stats.httpErrors, e.cause?.code ?? e.name);
  }
  return false;
}

// Publishes until acknowledged: the same body (same ids) every time.
async function httpProducer(until) {
  while (Date.now() < until) {
    const batch = Array.from({ length: 1 + (seqNo % 3) }, () => nextEvent('http'));
    while (!(await postEvents(batch))) await sleep(500);
    for (const e of batch) acked.set(e.id, { via: 'http', room: e.room });
    stats.httpAcked += batch.length;
    await sleep(100);
  }
}

// A minimal NATS client (core protocol with headers): enough to publish to JetStream and read the
// publish acks, reconnecting when the server goes away.
class Nats {
  constructor(addr) {
    [this.host, this.port] = addr.split(':');
    this.waiting = new Map();
    this.inbox = `_INBOX.soak${run}`;
    this.n = 0;
    this.sock = null;
  }

  async connect() {
    this.buf = Buffer.alloc(0);
    const sock = net.connect(Number(this.port), this.host);
    await new Promise((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.sock === sock) this.sock = null;
      for (const [, w] of this.waiting) w(null);
      this.waiting.clear();
    });
    sock.on('data', (chunk) => this.onData(chunk));
    sock.write(`CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}\r\nSUB ${this.inbox}.* 1\r\n`);
    this.sock = sock;
  }

  onData(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buf.subarray(0, eol).toString();
      const parts = line.split(' ');
      if (parts[0] === 'MSG' || parts[0] === 'HMSG') {
        const total = Number(parts[parts.length - 1]);
        if (this.buf.length < eol + 2 + total + 2) return;
        const body = this.buf.subarray(eol + 2, eol + 2 + total).toString();
        this.buf = this.buf.subarray(eol + 2 + total + 2);
        const waiter = this.waiting.get(parts[1]);
        this.waiting.delete(parts[1]);
        if (waiter) waiter(body);
        continue;
      }
      this.buf = this.buf.subarray(eol + 2);
      if (parts[0] === 'PING') this.sock?.write('PONG\r\n');
    }
  }

  // The JetStream ack's JSON (`{ stream, seq }`, or `{ error }`), or null (no answer in time).
  async publish(subject, msgId, payload) {
    if (!this.sock) {
      try {
        await this.connect();
      } catch {
        return null;
      }
    }
    this.n += 1;
    const reply = `${this.inbox}.${this.n}`;
    const hdr = `NATS/1.0\r\nNats-Msg-Id: ${msgId}\r\n\r\n`;
    const body = Buffer.from(payload);
    const answer = new Promise((resolve) => {
      this.waiting.set(reply, resolve);
      setTimeout(() => { this.waiting.delete(reply); resolve(null); }, 5000);
    });
    this.sock.write(`HPUB ${subject} ${reply} ${Buffer.byteLength(hdr)} ${Buffer.byteLength(hdr) + body.length}\r\n${hdr}`);
    this.sock.write(body);
    this.sock.write('\r\n');
    const raw = await answer;
    if (raw === null) return null;
    try {
      return JSON.parse(raw);
    } catch {
      return { error: 'no_responders' };
    }
  }
}

async function natsProducer(until) {
  const nats = new Nats(NATS);
  while (Date.now() < until) {
    const e = nextEvent('nats');
    for (;;) {
      stats.natsAttempts += 1;
      const ack = await nats.publish(e.type, e.id, JSON.stringify({ id: e.id, data: e.data }));
      if (ack && ack.seq && !ack.error) break;
      bump(stats.natsErrors, ack ? String(ack.error?.code ?? ack.error) : 'no_ack');
      await sleep(500);
    }
    acked.set(e.id, { via: 'nats', room: e.room });
    stats.natsAcked += 1;
    await sleep(100);
  }
  nats.sock?.destroy();
}

// ------------------------------------------------------------------------------------------
// Clients

class Client {
  constructor(i) {
    this.i = i;
    this.user = users[i % USERS];
    this.clientId = `soak-${run}-c${i}`;
    this.token = token(this.user, ['read:photos']);
    const own = photos.filter((p) => p.owner === this.user).slice(0, 1 + (i % 3));
    this.photoRooms = own.map((p) => `photo:${p.id}`);
    // Even clients resume their photo rooms from the first connect; odd ones subscribe with
    // `subscribe:photo { since: 0 }` first, then resume them on every reconnect.
    this.last = { [`user:${this.user}`]: 0, global: 0 };
    if (i % 2 === 0) for (const r of this.photoRooms) this.last[r] = 0;
    this.epoch = undefined;
    this.stats = { connects: 0, drops: 0, resumes: 0, subscribes: 0, events: 0, gaps: 0, duplicates: 0, truncated: 0, refused: 0, connectErrors: 0 };
    this.samples = [];
    this.dropping = true;
    this.socket = io(URL, {
      transports: ['websocket'],
      reconnectionDelay: 300,
      reconnectionDelayMax: 2000,
      auth: (cb) => cb({ token: this.token, clientId: this.clientId, resume: { ...this.last }, ...(this.epoch ? { epoch: this.epoch } : {}) }),
    });
    this.socket.on('connect_error', () => {
      this.stats.connectErrors += 1;
      // A refused handshake is not retried by socket.io-client; a transport error is.
      if (!this.socket.active) setTimeout(() => this.socket.connect(), 1000);
    });
    this.socket.on('connection:established', (m) => {
      this.stats.connects += 1;
      if (this.epoch && m.epoch !== this.epoch) this.note('epoch changed', m.epoch);
      this.epoch = m.epoch;
      this.subscribeMissing();
    });
    this.socket.on('resume:complete', (m) => {
      this.stats.resumes += 1;
      const refused = Object.keys(m.refused ?? {});
      if (refused.length) {
        this.stats.refused += refused.length;
        this.reconnect(1000);
      }
    });
    this.socket.on('replay:truncated', () => { this.stats.truncated += 1; });
    this.socket.onAny((name, payload) => this.onEvent(name, payload));
    this.dropLoop();
  }

  subscribeMissing() {
    for (const room of this.photoRooms) {
      if (room in this.last) continue;
      this.stats.subscribes += 1;
      this.socket.timeout(10_000).emit('subscribe:photo', { photoId: room.slice(6), since: 0 }, (err, ack) => {
        if (err || !ack?.ok) return this.reconnect(1000);
        if (!(room in this.last)) this.last[room] = 0;
      });
      // Tracked from now on: seqs may arrive before the ack.
      this.last[room] = this.last[room] ?? 0;
    }
  }

  onEvent(name, payload) {
    if (!payload || typeof payload.seq !== 'number' || !(payload.room in this.last)) return;
    this.stats.events += 1;
    const { room, seq } = payload;
    const last = this.last[room];
    if (seq <= last) {
      this.stats.duplicates += 1;
      this.note('duplicate', { room, seq, last, name });
    } else {
      if (seq !== last + 1) {
        this.stats.gaps += 1;
        this.note('gap', { room, seq, last, name });
      }
      this.last[room] = seq;
    }
  }

  note(kind, what) {
    if (this.samples.length < 5) this.samples.push({ kind, what });
    log(`client ${this.i}: ${kind}`, { what });
  }

  reconnect(afterMs) {
    this.socket.disconnect();
    setTimeout(() => this.socket.connect(), afterMs);
  }

  async dropLoop() {
    while (this.dropping) {
      await sleep(5_000 + Math.random() * 25_000);
      if (!this.dropping) return;
      this.stats.drops += 1;
      this.reconnect(Math.random() * 3000);
    }
  }

  close() {
    this.dropping = false;
    this.socket.disconnect();
  }
}

// ------------------------------------------------------------------------------------------
// Checks

async function history(room) {
  const events = [];
  let after = 0;
  for (;;) {
    const res = await fetch(`${URL}/api/rooms/${encodeURIComponent(room)}/events?after=${after}&limit=1000`, {
      headers: { authorization: `Bearer ${ADMIN}` },
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status === 404) return events;
    if (res.status !== 200) throw new Error(`history ${room}: ${res.status} ${await res.text()}`);
    const page = await res.json();
    events.push(...page.events);
    if (page.nextAfter === null || page.nextAfter === undefined) return events;
    after = page.nextAfter;
  }
}

async function retry(what, f, ms = SETTLE_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what}: ${e.message}`);
      await sleep(1000);
    }
  }
}

async function main() {
  if (!SECRET) throw new Error('--secret (or JWT_SECRET) is required');
  await retry('hub up', async () => {
    const r = await fetch(`${URL}/health`);
    if (!r.ok) throw new Error(String(r.status));
  });
  for (const p of photos) {
    const ev = [{ id: `soak-${run}-upload-${p.id}`, type: 'photo.uploaded', data: { photoId: p.id, userId: p.owner } }];
    while (!(await postEvents(ev))) await sleep(500);
    acked.set(ev[0].id, { via: 'http', room: `photo:${p.id}` });
  }
  const started = Date.now();
  const until = started + MINUTES * 60_000;
  const clients = Array.from({ length: CLIENTS }, (_, i) => new Client(i));
  log('running', { minutes: MINUTES, clients: CLIENTS, run });
  const ticker = setInterval(() => log('progress', { acked: acked.size, http: stats.httpAcked, nats: stats.natsAcked }), 30_000);
  await Promise.all([httpProducer(until), natsProducer(until)]);
  clearInterval(ticker);
  for (const c of clients) c.dropping = false;
  log('producers stopped; settling', { acked: acked.size });

  // Every acknowledged event stored exactly once; every room's seqs 1..head.
  const rooms = [...new Set([...photos.map((p) => `photo:${p.id}`), ...users.map((u) => `user:${u}`), 'global'])];
  const failures = [];
  let stored;
  await retry('acknowledged events stored', async () => {
    stored = new Map(await Promise.all(rooms.map(async (r) => [r, await history(r)])));
    const missing = [...acked].filter(([id, { room }]) => !stored.get(room).some((e) => e.eventId === id));
    if (missing.length) throw new Error(`${missing.length} acknowledged events not stored yet, e.g. ${missing[0][0]}`);
  }).catch((e) => failures.push(e.message));
  const heads = {};
  let storedEvents = 0;
  for (const [room, events] of stored) {
    heads[room] = events.length ? events[events.length - 1].seq : 0;
    storedEvents += events.length;
    const ids = new Map();
    events.forEach((e, i) => {
      if (e.seq !== i + 1) failures.push(`${room}: stored seq ${e.seq} at position ${i + 1}`);
      ids.set(e.eventId, (ids.get(e.eventId) ?? 0) + 1);
    });
    for (const [id, n] of ids) if (n > 1) failures.push(`${room}: ${id} stored ${n} times`);
  }

  // Every client caught up with every head, gap-free and duplicate-free.
  await retry('clients caught up', async () => {
    const behind = clients.filter((c) => Object.entries(c.last).some(([r, s]) => s < (heads[r] ?? 0)));
    if (behind.length) {
      const c = behind[0];
      throw new Error(`${behind.length} clients behind, e.g. ${c.i}: ${JSON.stringify(c.last)} vs ${JSON.stringify(Object.fromEntries(Object.keys(c.last).map((r) => [r, heads[r]])))}`);
    }
  }, 60_000).catch((e) => failures.push(e.message));
  const totals = {};
  for (const c of clients) {
    for (const [k, v] of Object.entries(c.stats)) totals[k] = (totals[k] ?? 0) + v;
    if (c.stats.gaps || c.stats.duplicates) failures.push(`client ${c.i}: ${c.stats.gaps} gaps, ${c.stats.duplicates} duplicates: ${JSON.stringify(c.samples)}`);
    c.close();
  }
  const summary = {
    run,
    minutes: MINUTES,
    acknowledged: acked.size,
    acknowledgedHttp: [...acked.values()].filter((a) => a.via === 'http').length,
    acknowledgedNats: [...acked.values()].filter((a) => a.via === 'nats').length,
    storedEvents,
    rooms: rooms.length,
    producers: stats,
    clients: totals,
    failures,
  };
  console.log(`SOAK ${JSON.stringify(summary)}`);
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});

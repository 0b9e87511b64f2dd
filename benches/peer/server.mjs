// The reference server of the load tool (docs/benchmarks.md, "Delivery at the limit"): Node's
// socket.io 4 with connection state recovery, speaking socket-bridge's protocol from memory, so
// that the tool drives both servers the same way.
//
// - Handshake `auth: { token, clientId, resume?, epoch? }`; the token is an HS256 JWT signed with
//   JWT_SECRET; the socket joins `user:<sub>`, `client:<clientId>` and `global`, then gets
//   `connection:established { socketId, clientId, userId, epoch, rooms, timestamp }`.
// - `subscribe:photo { photoId, since? }` with ack `{ ok, room, headSeq, epoch }` (owner with
//   `read:photos`, or `support:read`/`admin`).
// - `POST /api/events` (bearer token with `events:publish`): one event or an array, stored in
//   memory per room with a gap-free seq (the last RETAIN events per room are kept) and broadcast as
//   `{ ...data, eventId, room, seq, timestamp }`; the answer gives each event's rooms and seqs.
// - A reconnect is recovered by socket.io itself (`pid` and `offset` in `auth`, missed packets
//   replayed from its own buffer); when it cannot be, `auth.resume` is replayed from the rooms'
//   logs, as socket-bridge does, and both end with `resume:complete`.
//
// Unlike socket-bridge nothing is durable and nothing is validated beyond what routing needs.
//
//   JWT_SECRET=... PORT=0 node server.mjs    # prints `listening <port>` once it accepts connections

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const SECRET = process.env.JWT_SECRET;
if (!SECRET || SECRET.length < 16) {
  console.error('peer: set JWT_SECRET (at least 16 bytes)');
  process.exit(1);
}
const PORT = Number(process.env.PORT ?? 0);
/** Events kept per room for `resume` and `since`. */
const RETAIN = 10_000;
/** Largest request body accepted by `POST /api/events`. */
const MAX_BODY = 1 << 20;
const EPOCH = randomBytes(16).toString('hex');

// ---------------------------------------------------------------------------------------------
// Tokens

/** The claims of a valid HS256 token signed with SECRET, or null. */
function verify(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    if (header.alg !== 'HS256') return null;
    const expected = createHmac('sha256', SECRET).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2], 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
    if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number') return null;
    if (claims.exp + 60 < Date.now() / 1000) return null;
    return { user: claims.sub, permissions: new Set(claims.permissions ?? []) };
  } catch {
    return null;
  }
}

const readsEverything = (p) => p.permissions.has('support:read') || p.permissions.has('admin');

// ---------------------------------------------------------------------------------------------
// Rooms and events, in memory

/** room -> { head, events: payloads of the last RETAIN seqs, oldest first } */
const rooms = new Map();
/** photoId -> owner userId (from the photo's first event) */
const owners = new Map();

function room(name) {
  let r = rooms.get(name);
  if (!r) {
    r = { head: 0, events: [] };
    rooms.set(name, r);
  }
  return r;
}

const head = (name) => rooms.get(name)?.head ?? 0;

/** The rooms an event of `type` about `data` is stored in. */
function routes(type, data) {
  if (type === 'system.maintenance') return ['global'];
  const photo = data?.photoId;
  if (typeof photo !== 'string') return null;
  if (!owners.has(photo)) {
    if (typeof data.userId !== 'string') return null;
    owners.set(photo, data.userId);
  }
  const owner = owners.get(photo);
  switch (type) {
    case 'photo.processing.started':
    case 'photo.processing.progress':
      return [`photo:${photo}`];
    case 'photo.uploaded':
    case 'photo.processing.completed':
    case 'photo.processing.failed':
    case 'photo.deleted':
      return [`photo:${photo}`, `user:${owner}`];
    default:
      return null;
  }
}

/** Whether `principal` may read `name`, and why not. */
function access(principal, name, clientId) {
  if (readsEverything(principal) || name === 'global') return null;
  const [kind, id] = name.split(/:(.*)/s);
  if (kind === 'photo') {
    if (!owners.has(id)) return 'not_found';
    return owners.get(id) === principal.user && principal.permissions.has('read:photos') ? null : 'forbidden';
  }
  if (kind === 'user') return id === principal.user && principal.permissions.has('read:photos') ? null : 'forbidden';
  if (kind === 'client') return id === clientId ? null : 'forbidden';
  return 'forbidden';
}

/** Emits to `socket` every kept event of `name` after `since`, in order. */
function replay(socket, name, since) {
  const r = rooms.get(name);
  if (!r) return;
  const first = r.head - r.events.length + 1;
  for (let seq = Math.max(since + 1, first); seq <= r.head; seq += 1) {
    const { type, payload } = r.events[seq - first];
    socket.emit(type, payload);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP ingest

const http = createServer((req, res) => {
  const answer = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method !== 'POST' || req.url !== '/api/events') return answer(404, { error: 'not_found' });
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  const principal = verify(bearer);
  if (!principal) return answer(401, { error: 'unauthorized' });
  if (!principal.permissions.has('events:publish') && !principal.permissions.has('admin')) {
    return answer(403, { error: 'forbidden' });
  }
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  });
  req.on('end', () => {
    if (size > MAX_BODY) return answer(413, { error: 'payload_too_large' });
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks));
    } catch {
      return answer(400, { error: 'invalid_payload' });
    }
    const events = Array.isArray(body) ? body : [body];
    const receipts = [];
    for (const event of events) {
      const eventId = event.id ?? randomBytes(16).toString('hex');
      const timestamp = event.timestamp ?? new Date().toISOString();
      const data = event.data ?? {};
      if (event.type === 'system.health') {
        io.emit(event.type, { ...data, eventId, room: 'global', timestamp });
        receipts.push({ eventId, rooms: {} });
        continue;
      }
      const names = routes(event.type, data);
      if (!names) return answer(400, { error: 'invalid_payload', detail: `event ${receipts.length}` });
      const seqs = {};
      for (const name of names) {
        const r = room(name);
        r.head += 1;
        const payload = { ...data, eventId, room: name, seq: r.head, timestamp };
        r.events.push({ type: event.type, payload });
        if (r.events.length > RETAIN) r.events.shift();
        io.to(name).emit(event.type, payload);
        seqs[name] = r.head;
      }
      receipts.push({ eventId, rooms: seqs });
    }
    answer(200, { events: receipts });
  });
});

// ---------------------------------------------------------------------------------------------
// Socket.IO

const io = new Server(http, {
  connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true },
  maxHttpBufferSize: MAX_BODY,
});

io.use((socket, next) => {
  const auth = socket.handshake.auth ?? {};
  const principal = verify(auth.token);
  if (!principal) return next(new Error('unauthorized'));
  if (typeof auth.clientId !== 'string' || auth.clientId.length === 0) return next(new Error('invalid_handshake'));
  if (auth.resume != null && (typeof auth.resume !== 'object' || Array.isArray(auth.resume))) {
    return next(new Error('invalid_handshake'));
  }
  socket.data = { principal, clientId: auth.clientId };
  next();
});

io.on('connection', (socket) => {
  const { principal, clientId } = socket.data;
  const resume = socket.handshake.auth.resume;
  if (socket.recovered) {
    // socket.io has re-joined the rooms and sent what was missed, before the connect packet.
    socket.emit('resume:complete', { rooms: {}, refused: {}, recovered: true });
  } else {
    const defaults = [`user:${principal.user}`, `client:${clientId}`, 'global'];
    const heads = {};
    for (const name of defaults) {
      if (resume && name in resume) continue;
      socket.join(name);
      heads[name] = head(name);
    }
    socket.emit('connection:established', {
      socketId: socket.id,
      clientId,
      userId: principal.user,
      epoch: EPOCH,
      rooms: heads,
      timestamp: new Date().toISOString(),
    });
    if (resume) {
      const live = {};
      const refused = {};
      for (const [name, seq] of Object.entries(resume)) {
        const error = access(principal, name, clientId);
        if (error) {
          refused[name] = error;
          continue;
        }
        // Node runs this to the end before any other event: nothing slips between replay and join.
        replay(socket, name, Number(seq));
        socket.join(name);
        live[name] = head(name);
      }
      socket.emit('resume:complete', { rooms: live, refused });
    }
  }

  socket.on('subscribe:photo', (payload, ack) => {
    const reply = typeof ack === 'function' ? ack : () => {};
    const photoId = payload?.photoId;
    if (typeof photoId !== 'string') return reply({ ok: false, error: 'invalid_payload' });
    const name = `photo:${photoId}`;
    const error = access(principal, name, clientId);
    if (error) return reply({ ok: false, error });
    if (typeof payload.since === 'number') replay(socket, name, payload.since);
    socket.join(name);
    socket.emit('subscription:confirmed', { photoId, message: `Subscribed to photo ${photoId}` });
    reply({ ok: true, room: name, headSeq: head(name), epoch: EPOCH });
  });

  socket.on('ping', (_payload, ack) => {
    const answer = { timestamp: new Date().toISOString() };
    socket.emit('pong', answer);
    if (typeof ack === 'function') ack(answer);
  });
});

http.listen(PORT, '127.0.0.1', () => {
  console.log(`listening ${http.address().port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    io.close();
    process.exit(0);
  });
}

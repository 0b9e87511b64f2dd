// docs/protocol.md, "Connecting": who may connect, and what a refused or accepted handshake looks like.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RFC3339_MS, badTokens, signJwt, startHub, token, uid, useHub } from './hub.mjs';

const hub = await useHub();

// Each refused token with the one word `err.data.reason` gives (the words of the HTTP 401 bodies).
const unauthorized = [
  ['no auth at all', () => undefined, 'missing'],
  ['no token', () => ({ clientId: uid('c') }), 'missing'],
  ['a null token', () => ({ token: null, clientId: uid('c') }), 'missing'],
  ['a numeric token', () => ({ token: 42, clientId: uid('c') }), 'malformed'],
  ['a garbage token', () => ({ token: badTokens.garbage(), clientId: uid('c') }), 'malformed'],
  ['a token expired ten minutes ago (beyond the 60 s leeway)', () => ({ token: badTokens.expired(), clientId: uid('c') }), 'expired'],
  ['a token expired long ago', () => ({ token: badTokens.longExpired(), clientId: uid('c') }), 'expired'],
  ['a token without exp', () => ({ token: badTokens.noExp(), clientId: uid('c') }), 'malformed'],
  ['a token signed with another secret', () => ({ token: badTokens.wrongSecret(), clientId: uid('c') }), 'bad_signature'],
  ['an unsigned alg "none" token', () => ({ token: badTokens.algNone(), clientId: uid('c') }), 'malformed'],
  ['an HS384 token signed with the right secret', () => ({ token: badTokens.hs384(), clientId: uid('c') }), 'bad_signature'],
  ['a bad token even when clientId is missing too', () => ({ token: badTokens.garbage() }), 'malformed'],
  ["the original design's bare userId handshake (no --insecure-dev-auth)", () => ({ userId: uid('u'), clientId: uid('c') }), 'missing'],
  ['a token without sub', () => ({ token: signJwt({ exp: Math.floor(Date.now() / 1000) + 600, permissions: [] }), clientId: uid('c') }), 'malformed'],
];

/**
 * Connects with `auth`, which must be refused with connect_error `message` and `data` (e.g.
 * `{ reason: 'expired' }`) and leave it unconnected; returns the closed client.
 */
async function refusedAs(auth, message, data) {
  const client = hub.client(auth);
  const err = await client.refused();
  assert.equal(err.message, message);
  assert.deepEqual(err.data, data);
  assert.equal(client.connected, false);
  client.close();
  return client;
}

for (const [name, auth, reason] of unauthorized) {
  // Shows that a handshake with this token is refused with connect_error "unauthorized", says why in
  // `data.reason`, and never connects.
  test(`handshake with ${name} is refused as unauthorized (${reason})`, async () => {
    const client = await refusedAs(auth(), 'unauthorized', { reason });
    assert.equal(client.find('connection:established'), undefined);
  });
}

// Each defect with the `err.data` it gives: `reason` (`missing` or `malformed`) and the `auth` field.
const invalid = [
  ['a missing clientId', () => ({ token: token(uid('u')) }), 'missing', 'clientId'],
  ['an empty clientId', () => ({ token: token(uid('u')), clientId: '' }), 'malformed', 'clientId'],
  ['a clientId with spaces', () => ({ token: token(uid('u')), clientId: 'my client' }), 'malformed', 'clientId'],
  ['a numeric clientId', () => ({ token: token(uid('u')), clientId: 7 }), 'malformed', 'clientId'],
  ['a sessionId with spaces', () => ({ token: token(uid('u')), clientId: uid('c'), sessionId: 'my session' }), 'malformed', 'sessionId'],
  ['a numeric epoch', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:p1': 1 }, epoch: 5 }), 'malformed', 'epoch'],
  ['a negative resume seq', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:p1': -1 } }), 'malformed', 'resume'],
  ['a fractional resume seq', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:p1': 1.5 } }), 'malformed', 'resume'],
  ['a string resume seq', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:p1': '3' } }), 'malformed', 'resume'],
  ['resume as an array', () => ({ token: token(uid('u')), clientId: uid('c'), resume: [1] }), 'malformed', 'resume'],
  ['resume as a string', () => ({ token: token(uid('u')), clientId: uid('c'), resume: 'photo:p1' }), 'malformed', 'resume'],
  ['a resume room of an unknown kind', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'team:x': 1 } }), 'malformed', 'resume'],
  ['a resume room with a malformed id', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:a b': 1 } }), 'malformed', 'resume'],
];

for (const [name, auth, reason, field] of invalid) {
  // Shows that a well-authenticated handshake with this defect is refused with "invalid_handshake",
  // and `data` names the defect and the field.
  test(`handshake with ${name} is refused as invalid_handshake (${reason} ${field})`, async () => {
    await refusedAs(auth(), 'invalid_handshake', { reason, field });
  });
}

// Shows that a valid token connects and gets connection:established with the socket's identity and the store epoch.
test('a valid token connects and receives connection:established', async () => {
  const user = uid('u');
  const clientId = uid('c');
  const sessionId = uid('s');
  const client = hub.client({ token: token(user), clientId, sessionId });
  await client.open();
  const established = await client.waitFor('connection:established');
  assert.deepEqual(Object.keys(established).sort(), ['clientId', 'epoch', 'rooms', 'socketId', 'timestamp', 'userId']);
  // The default rooms it joined live, each with the head seq live delivery continues after.
  const { global, ...own } = established.rooms;
  assert.deepEqual(own, { [`user:${user}`]: 0, [`client:${clientId}`]: 0, [`session:${sessionId}`]: 0 });
  assert.ok(Number.isInteger(global) && global >= 0, 'global is joined at its head');
  assert.equal(established.socketId, client.socket.id);
  assert.equal(established.clientId, clientId);
  assert.equal(established.userId, user);
  assert.equal(typeof established.epoch, 'string');
  assert.ok(established.epoch.length > 0);
  assert.equal(established.epoch, hub.epoch, 'the epoch is the store identity the hub logged at start');
  assert.match(established.timestamp, RFC3339_MS);
  assert.ok(Math.abs(Date.parse(established.timestamp) - Date.now()) < 60_000);
  // The socket is really served.
  const pong = await client.ping();
  assert.match(pong.timestamp, RFC3339_MS);
  client.close();
});

// Shows that a token that expired 30 s ago is still accepted (the contract allows up to 60 s of skew).
test('a token within the clock-skew leeway connects', async () => {
  const user = uid('u');
  const client = hub.client({
    token: token(user, ['read:photos'], { ttlSecs: -30 }),
    clientId: uid('c'),
  });
  await client.open();
  assert.equal((await client.waitFor('connection:established')).userId, user);
  client.close();
});

// Shows that the epoch is the same for every connection to one store.
test('every connection sees the same epoch', async () => {
  const a = await hub.connect(uid('u'));
  const b = await hub.connect(uid('u'));
  assert.equal(a.find('connection:established').data.epoch, b.find('connection:established').data.epoch);
  a.close();
  b.close();
});

// Shows that refusals reach a client on the polling transport the same way as on websocket.
test('refusals look the same over the polling transport', async () => {
  const noToken = hub.client({ clientId: uid('c') }, { transports: ['polling'] });
  const unauthorized = await noToken.refused();
  assert.equal(unauthorized.message, 'unauthorized');
  assert.deepEqual(unauthorized.data, { reason: 'missing' });
  noToken.close();
  const noClient = hub.client({ token: token(uid('u')) }, { transports: ['polling'] });
  const invalid = await noClient.refused();
  assert.equal(invalid.message, 'invalid_handshake');
  assert.deepEqual(invalid.data, { reason: 'missing', field: 'clientId' });
  noClient.close();
  const ok = hub.client({ token: token(uid('u')), clientId: uid('c') }, { transports: ['polling'] });
  await ok.open();
  await ok.waitFor('connection:established');
  ok.close();
});

// Shows that a hub holding --max-connections sockets refuses the next one with "overloaded" and
// `data.reason` "max_connections", and that the socket already connected is still served.
test('a hub at its connection limit refuses with overloaded (max_connections)', async () => {
  const full = await startHub({ args: ['--max-connections', '1'] });
  try {
    const first = await full.connect(uid('u'));
    const second = full.client({ token: token(uid('u')), clientId: uid('c') });
    const err = await second.refused();
    assert.equal(err.message, 'overloaded');
    assert.deepEqual(err.data, { reason: 'max_connections' });
    second.close();
    await first.ping();
    first.close();
  } finally {
    await full.close();
  }
});

// Issue scenario 4: the token expires while the client is connected. At `exp` plus its leeway
// (1 s here) the hub sends `auth:expired` and disconnects the socket; the client asks getToken for
// a fresh token, reconnects and resumes, and its handlers get every event published meanwhile
// exactly once, in order. A fixed token that the hub refuses stops the client.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { SocketBridgeClient } from '../dist/index.js';
import { ev, sleep, startHub, token, uid } from './support/hub.mjs';
import { Ledger, Recorder, until, within } from './support/recorder.mjs';

let hub;
const cleanup = [];
before(async () => {
  hub = await startHub({ env: { TOKEN_LEEWAY: '1s' } });
});
after(async () => {
  for (const close of cleanup.reverse()) await close();
  await hub?.close();
});

/** Whether the hub refuses `bearer` now (HTTP 401 on a read any valid token may make). */
async function refused(bearer) {
  const res = await fetch(`${hub.url}/api/rooms/global/events?limit=1`, { headers: { authorization: `Bearer ${bearer}` } });
  return res.status === 401;
}

test('a token that expires while connected: auth:expired, a fresh token from getToken, a resume, nothing lost', async () => {
  const user = uid('u');
  const photo = uid('p');
  const photoRoom = `photo:${photo}`;
  const ledger = new Ledger();
  await ledger.publish(hub, [ev.uploaded(photo, user)]);
  // Valid for 2 s (3 s with the leeway); every later token for an hour.
  const shortLived = token(user, ['read:photos'], { ttlSecs: 2 });
  const handedOut = [];
  const client = new SocketBridgeClient(hub.url, {
    // The first token at once; later ones from a token service that takes 800 ms to answer, so
    // that events are stored while the client is away (several even when each publish waits a
    // slow disk's flush).
    getToken: async () => {
      const next = handedOut.length === 0 ? shortLived : token(user);
      handedOut.push(next);
      if (handedOut.length > 1) await sleep(800);
      return next;
    },
    clientId: uid('c'),
    transports: ['websocket'],
    backoff: { initialMs: 50, maxMs: 250 },
  });
  cleanup.push(() => client.disconnect());
  const recorder = new Recorder(client);
  const changes = [];
  client.on('connection', (change) => changes.push(change));
  const expired = [];
  client.on('auth:expired', (payload) => expired.push({ payload, at: Date.now() }));
  await client.connect();
  assert.equal((await client.subscribeToPhoto(photo)).ok, true);

  // Events every 50 ms until well past the expiry: some reach the client while the old token's
  // socket is being closed or before the new one is up, and must come by the resume.
  for (let i = 0; i < 150 && !(expired.length && Date.now() - expired[0].at > 1000); i += 1) {
    await ledger.publish(hub, [ev.progress(photo, i % 100)]);
    await sleep(50);
  }
  await recorder.waitForState('live', 2);
  await ledger.publish(hub, [ev.completed(photo)]);

  await ledger.assertDelivered(recorder, photoRoom);
  assert.ok(recorder.resumed(photoRoom).length >= 3, 'what was published while the client was away came by the resume');
  assert.deepEqual(expired.map((e) => e.payload), [{}], 'the hub said auth:expired once');
  assert.ok(changes.some((c) => c.state === 'offline' && c.reason === 'auth:expired'));
  assert.equal(handedOut.length, 2, 'getToken was called again for the reconnect');
  await until(() => refused(shortLived), 'the first token to be refused', 3000);
  assert.equal(await refused(handedOut[1]), false);
});

test('a fixed token that the hub refuses stops the client with `unauthorized`', async () => {
  const client = new SocketBridgeClient(hub.url, {
    token: token(uid('u'), ['read:photos'], { ttlSecs: -600 }),
    clientId: uid('c'),
    backoff: { initialMs: 50, maxMs: 250 },
  });
  cleanup.push(() => client.disconnect());
  const changes = [];
  client.on('connection', (change) => changes.push(change));
  await assert.rejects(within(client.connect(), 3000, 'connect() to reject'), { message: 'unauthorized' });
  await sleep(300);
  assert.equal(client.state, 'offline');
  assert.deepEqual(changes.map((c) => c.state), ['connecting', 'offline'], 'no retry');
  assert.equal(changes[1].retryInMs, undefined);
});

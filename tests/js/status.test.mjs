// docs/protocol.md, "Photo status": photo:status:request and the status a photo's events derive.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ev, token, uid, useHub } from './hub.mjs';

const hub = await useHub();

const at = (second) => `2026-05-06T07:08:${String(second).padStart(2, '0')}.${String(second * 7).padStart(3, '0')}Z`;

/** The status over the socket (ack), and checks that HTTP GET /api/photos/{id}/status agrees. */
async function statusOf(client, photo, bearer) {
  const status = await client.ack('photo:status:request', { photoId: photo });
  const http = await hub.get(`/api/photos/${photo}/status`, bearer);
  assert.equal(http.status, 200);
  assert.deepEqual(http.body, status, 'the HTTP status endpoint answers the same object');
  return status;
}

// Shows the status object and its transitions: uploaded -> pending/0, progress 40 -> processing/40, completed -> 100 and final.
test('photo:status:request follows uploaded -> processing -> completed (final)', async () => {
  const user = uid('u');
  const photo = uid('p');
  const bearer = token(user);
  const client = await hub.connect(user);

  await hub.publishOne(ev.uploaded(photo, user, {}, { timestamp: at(1) }));
  assert.deepEqual(await statusOf(client, photo, bearer), {
    photoId: photo,
    userId: user,
    status: 'pending',
    progress: 0,
    lastEventType: 'photo.uploaded',
    lastSeq: 1,
    updatedAt: at(1),
  });

  await hub.publishOne(ev.progress(photo, 40, {}, { timestamp: at(2) }));
  assert.deepEqual(await statusOf(client, photo, bearer), {
    photoId: photo,
    userId: user,
    status: 'processing',
    progress: 40,
    lastEventType: 'photo.processing.progress',
    lastSeq: 2,
    updatedAt: at(2),
  });

  // started without a progress keeps the last reported progress.
  await hub.publishOne(ev.started(photo, {}, { timestamp: at(3) }));
  const started = await statusOf(client, photo, bearer);
  assert.equal(started.status, 'processing');
  assert.equal(started.progress, 40);
  assert.equal(started.lastEventType, 'photo.processing.started');
  assert.equal(started.lastSeq, 3);
  assert.equal(started.updatedAt, at(3));

  await hub.publishOne(ev.completed(photo, {}, { timestamp: at(4) }));
  const completed = {
    photoId: photo,
    userId: user,
    status: 'completed',
    progress: 100,
    lastEventType: 'photo.processing.completed',
    lastSeq: 4,
    updatedAt: at(4),
  };
  assert.deepEqual(await statusOf(client, photo, bearer), completed);

  // completed is final: a late progress is stored and moves lastSeq/lastEventType, not the status.
  await hub.publishOne(ev.progress(photo, 10, {}, { timestamp: at(5) }));
  assert.deepEqual(await statusOf(client, photo, bearer), {
    ...completed,
    lastEventType: 'photo.processing.progress',
    lastSeq: 5,
  });
  client.close();
});

// Shows that without an ack callback the status arrives as a photo:status event.
test('without an ack the status arrives as photo:status', async () => {
  const user = uid('u');
  const photo = uid('p');
  const client = await hub.connect(user);
  await hub.publish([
    ev.uploaded(photo, user, {}, { timestamp: at(10) }),
    ev.progress(photo, 55, {}, { timestamp: at(11) }),
  ]);
  client.emit('photo:status:request', { photoId: photo });
  const status = await client.waitFor('photo:status', (d) => d.photoId === photo);
  assert.deepEqual(status, {
    photoId: photo,
    userId: user,
    status: 'processing',
    progress: 55,
    lastEventType: 'photo.processing.progress',
    lastSeq: 2,
    updatedAt: at(11),
  });
  client.close();
});

// Shows failed (progress kept, error set), a retry back to processing, and deleted as final.
test('failed keeps progress and sets error; a retry processes again; deleted is final', async () => {
  const user = uid('u');
  const photo = uid('p');
  const bearer = token(user);
  const client = await hub.connect(user);
  await hub.publish([
    ev.uploaded(photo, user, {}, { timestamp: at(20) }),
    ev.progress(photo, 30, {}, { timestamp: at(21) }),
    ev.failed(photo, 'decoder crashed', {}, { timestamp: at(22) }),
  ]);
  assert.deepEqual(await statusOf(client, photo, bearer), {
    photoId: photo,
    userId: user,
    status: 'failed',
    progress: 30,
    lastEventType: 'photo.processing.failed',
    lastSeq: 3,
    updatedAt: at(22),
    error: 'decoder crashed',
  });

  await hub.publishOne(ev.started(photo, {}, { timestamp: at(23) }));
  const retry = await statusOf(client, photo, bearer);
  assert.equal(retry.status, 'processing');
  assert.equal(retry.progress, 30);
  assert.equal('error' in retry, false, 'the error goes away with the retry');
  assert.equal(retry.updatedAt, at(23));

  await hub.publishOne(ev.deleted(photo, {}, { timestamp: at(24) }));
  const deleted = await statusOf(client, photo, bearer);
  assert.equal(deleted.status, 'deleted');
  assert.equal(deleted.lastSeq, 5);
  assert.equal(deleted.updatedAt, at(24));

  await hub.publishOne(ev.completed(photo, {}, { timestamp: at(25) }));
  const after = await statusOf(client, photo, bearer);
  assert.equal(after.status, 'deleted', 'deleted is final');
  assert.equal(after.lastSeq, 6);
  assert.equal(after.lastEventType, 'photo.processing.completed');
  assert.equal(after.updatedAt, at(24));
  client.close();
});

// Shows that status requests are authorized like subscriptions: forbidden for others, not_found for unknown, open to support:read.
test('photo:status:request is authorized', async () => {
  const owner = uid('u');
  const photo = uid('p');
  await hub.publishOne(ev.uploaded(photo, owner));
  const stranger = await hub.connect(uid('u'));
  assert.deepEqual(await stranger.ack('photo:status:request', { photoId: photo }), { ok: false, error: 'forbidden' });
  assert.deepEqual(await stranger.ack('photo:status:request', { photoId: uid('nope') }), { ok: false, error: 'not_found' });
  const support = await hub.connect(uid('staff'), { permissions: ['support:read'] });
  const status = await support.ack('photo:status:request', { photoId: photo });
  assert.equal(status.userId, owner);
  assert.equal(status.status, 'pending');
  stranger.close();
  support.close();
});

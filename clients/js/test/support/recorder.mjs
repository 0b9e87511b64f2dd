// What a client's handlers got, and what was published: the two sides every test compares.

import assert from 'node:assert/strict';

import { STORED_EVENT_TYPES } from '../../dist/index.js';

/** Waits until `check()` returns (or resolves to) something truthy, polled every 10 ms; resolves with it. */
export async function until(check, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Resolves or rejects as `promise` does, or rejects after `ms` naming `what`. */
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Records every stored event a client's handlers are called with (and the connection state then),
 * its states and its truncations.
 */
export class Recorder {
  constructor(client) {
    this.events = [];
    this.states = [];
    this.truncations = [];
    for (const type of STORED_EVENT_TYPES) {
      client.on(type, (event) => this.events.push({ ...event, type, state: client.state }));
    }
    client.on('connection', (change) => this.states.push(change.state));
    client.on('replay:truncated', (truncation) => this.truncations.push(truncation));
  }

  /** `[seq, eventId]` of every event the handlers got for `room`, in the order they got them. */
  delivered(room) {
    return this.events.filter((e) => e.room === room).map((e) => [e.seq, e.eventId]);
  }

  /** The seqs of `room` delivered while the client was resuming (replayed after a (re)connect). */
  resumed(room) {
    return this.events.filter((e) => e.room === room && e.state === 'resuming').map((e) => e.seq);
  }

  /** Waits until the handlers got `count` events of `room`. */
  async waitFor(room, count, ms) {
    await until(() => this.delivered(room).length >= count, `${count} events in ${room}`, ms);
  }

  /** Waits until the client has been in `state` `times` times. */
  async waitForState(state, times = 1, ms) {
    await until(() => this.states.filter((s) => s === state).length >= times, `state ${state} x${times}`, ms).catch((e) => {
      e.message += `; states: ${this.states.join(',')}`;
      throw e;
    });
  }
}

/** The receipts of everything published, to say what each room must deliver. */
export class Ledger {
  constructor() {
    this.receipts = [];
  }

  /** Publishes `events` on `hub` and keeps the receipts. */
  async publish(hub, events) {
    const receipts = await hub.publish(events);
    this.receipts.push(...receipts);
    return receipts;
  }

  /** `[seq, eventId]` of every event published to `room` after seq `after`, in seq order. */
  expected(room, after = 0) {
    return this.receipts
      .filter((r) => r.rooms[room] > after)
      .map((r) => [r.rooms[room], r.eventId])
      .sort((a, b) => a[0] - b[0]);
  }

  /**
   * Waits until `recorder` got as many events of `room` as were published after seq `after`, then
   * checks that it got those, once each, in order.
   */
  async assertDelivered(recorder, room, { after = 0, ms } = {}) {
    const expected = this.expected(room, after);
    await recorder.waitFor(room, expected.length, ms).catch((e) => {
      e.message += `; ${room} got seqs ${recorder.delivered(room).map(([seq]) => seq).join(',')}`;
      throw e;
    });
    // Anything late would be a duplicate: give it a moment to show up.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(recorder.delivered(room), expected, `${room}: every event once, in seq order`);
  }
}

/**
 * This client's position: the epoch and, for every room it is in, the last seq its handlers got.
 * It decides which stored events reach the handlers (exactly once per `(room, seq)`, in order)
 * and what the next handshake resumes. It is kept in memory, so that a client never skips
 * events another tab already saw, and mirrored to storage for the next page load.
 * @module
 */

import type { SavedState } from './saved-state.js';

/** What to do with a stored event. */
export type Verdict = 'deliver' | 'duplicate' | 'gap' | 'untracked';

/** Rooms a new client resumes from storage: the ones every connection is in. */
function isDefaultRoom(room: string, clientId: string, sessionId: string | undefined): boolean {
  return (
    room === 'global' ||
    room.startsWith('user:') ||
    room === `client:${clientId}` ||
    (sessionId !== undefined && room === `session:${sessionId}`)
  );
}

export class RoomCursor {
  readonly #saved: SavedState;
  readonly #seqs = new Map<string, number>();
  #epoch: string | undefined;

  /** Starts from what storage holds for the rooms every connection of this client joins. */
  constructor(saved: SavedState, clientId: string, sessionId: string | undefined) {
    this.#saved = saved;
    const record = saved.read();
    this.#epoch = record.epoch;
    for (const [room, seq] of Object.entries(record.seqs)) {
      if (isDefaultRoom(room, clientId, sessionId)) this.#seqs.set(room, seq);
    }
  }

  /** The epoch the seqs belong to, once known. */
  get epoch(): string | undefined {
    return this.#epoch;
  }

  /** `resume` for the handshake: every room this client is in, at its last seq. */
  resume(): Record<string, number> {
    return Object.fromEntries(this.#seqs);
  }

  /**
   * Follows `room` from its last known seq: this client's; else `since`; else the stored one of
   * the same epoch; else 0 (its whole history). Returns that seq.
   */
  follow(room: string, since?: number): number {
    const known = this.#seqs.get(room);
    if (known !== undefined) return known;
    const record = this.#saved.read();
    const stored = record.epoch === this.#epoch ? record.seqs[room] : undefined;
    const seq = since ?? stored ?? 0;
    this.#seqs.set(room, seq);
    return seq;
  }

  /** Stops following `room`. */
  forget(room: string): void {
    this.#seqs.delete(room);
    this.#saved.remove(room);
  }

  /**
   * A connection was established with the store `epoch`. Another epoch than ours means the store
   * was replaced: every seq is reset to 0 (the hub answers each resumed room with
   * `replay:truncated`). Default rooms joined live start at their head.
   */
  established(epoch: string, liveRooms: Record<string, number>): void {
    if (this.#epoch !== epoch) {
      if (this.#epoch !== undefined) for (const room of this.#seqs.keys()) this.#seqs.set(room, 0);
      this.#epoch = epoch;
    }
    for (const [room, head] of Object.entries(liveRooms)) {
      if (!this.#seqs.has(room)) this.#seqs.set(room, head);
    }
    for (const room of this.#seqs.keys()) this.#persist(room);
  }

  /** A replay of `room` goes on from `oldestSeq`: what came before is gone. */
  truncated(room: string, oldestSeq: number): void {
    if (!this.#seqs.has(room)) return;
    this.#seqs.set(room, oldestSeq - 1);
    this.#persist(room, true);
  }

  /** Judges a stored event; a delivered one moves the room on. */
  check(room: string, seq: number): Verdict {
    const last = this.#seqs.get(room);
    if (last === undefined || this.#epoch === undefined) return 'untracked';
    if (seq <= last) return 'duplicate';
    if (seq !== last + 1) return 'gap';
    this.#seqs.set(room, seq);
    this.#persist(room);
    return 'deliver';
  }

  /** Mirrors `room`'s seq to storage (`exact`: even if it is lower than the stored one). */
  #persist(room: string, exact = false): void {
    const seq = this.#seqs.get(room);
    if (seq === undefined || this.#epoch === undefined) return;
    this.#saved.save(this.#epoch, room, seq, this.resume(), exact);
  }
}

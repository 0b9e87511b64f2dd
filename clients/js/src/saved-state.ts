/**
 * The epoch and the last seq per room as kept in storage, under one key shared by every client
 * (tab) that uses the same storage. Writes merge into what is there, so two tabs never roll
 * each other's seqs back; storage that fails (full, blocked) is ignored, since each client's
 * own position is kept in memory (see `RoomCursor`).
 * @module
 */

import type { KeyValueStorage } from './storage.js';

/** What is kept under the key. */
export interface SavedRecord {
  epoch?: string;
  seqs: Record<string, number>;
}

export class SavedState {
  readonly #storage: KeyValueStorage;
  readonly #key: string;

  constructor(storage: KeyValueStorage, key: string) {
    this.#storage = storage;
    this.#key = key;
  }

  /** The record as stored; an empty one when there is none or it is unreadable. */
  read(): SavedRecord {
    try {
      const parsed: unknown = JSON.parse(this.#storage.getItem(this.#key) ?? 'null');
      if (parsed && typeof parsed === 'object') {
        const { epoch, seqs } = parsed as Partial<SavedRecord>;
        return {
          ...(typeof epoch === 'string' ? { epoch } : {}),
          seqs: seqs && typeof seqs === 'object' ? { ...seqs } : {},
        };
      }
    } catch {
      // Unreadable: start afresh.
    }
    return { seqs: {} };
  }

  /**
   * Records `seq` for `room` in `epoch`. Within the same epoch a lower seq than the stored one is
   * kept only with `exact` (a truncation moves a room back); a record of another epoch is
   * replaced by `fallback`, this client's whole position.
   */
  save(epoch: string, room: string, seq: number, fallback: Record<string, number>, exact = false): void {
    const record = this.read();
    if (record.epoch !== epoch) {
      this.replace(epoch, fallback);
      return;
    }
    const stored = record.seqs[room];
    record.seqs[room] = exact || stored === undefined ? seq : Math.max(stored, seq);
    this.#write(record);
  }

  /** Replaces the whole record: a new epoch makes every stored seq meaningless. */
  replace(epoch: string, seqs: Record<string, number>): void {
    this.#write({ epoch, seqs: { ...seqs } });
  }

  /** Forgets `room` (an unsubscribed or refused photo). */
  remove(room: string): void {
    const record = this.read();
    if (!(room in record.seqs)) return;
    delete record.seqs[room];
    this.#write(record);
  }

  #write(record: SavedRecord): void {
    try {
      this.#storage.setItem(this.#key, JSON.stringify(record));
    } catch {
      // Storage full or blocked: this client's position is still kept in memory.
    }
  }
}

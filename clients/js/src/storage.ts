/**
 * Where the client keeps its epoch and seqs: anything with `getItem` and `setItem`.
 * @module
 */

/** The part of the Web Storage API the client uses (`localStorage` has it). */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Storage in memory: for Node, and for sharing one store between clients in a test. */
export class MemoryStorage implements KeyValueStorage {
  readonly #items = new Map<string, string>();

  getItem(key: string): string | null {
    return this.#items.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    this.#items.set(key, String(value));
  }
}

/** `localStorage` where there is one that works (a browser), else a new `MemoryStorage`. */
export function defaultStorage(): KeyValueStorage {
  try {
    const local = globalThis.localStorage;
    if (local) {
      local.getItem('socket-bridge:probe'); // throws where storage is blocked
      return local;
    }
  } catch {
    // No usable localStorage (Node, a sandboxed frame, storage disabled): fall through.
  }
  return new MemoryStorage();
}

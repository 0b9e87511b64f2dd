/**
 * Reconnect delays: capped exponential backoff with jitter, so that a hub restarted under many
 * clients is not hit by all of them at once.
 * @module
 */

import type { BackoffOptions } from './types.js';

export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #attempts = 0;

  constructor(
    { initialMs = 500, maxMs = 30_000, factor = 2, jitter = 0.5 }: BackoffOptions = {},
    random: () => number = Math.random,
  ) {
    this.#initialMs = initialMs;
    this.#maxMs = maxMs;
    this.#factor = factor;
    this.#jitter = Math.min(1, Math.max(0, jitter));
    this.#random = random;
  }

  /** The next delay: `min(maxMs, initialMs * factor^n)`, less up to `jitter` of it at random. */
  next(): number {
    const base = Math.min(this.#maxMs, this.#initialMs * this.#factor ** this.#attempts);
    this.#attempts += 1;
    return Math.round(base * (1 - this.#jitter * this.#random()));
  }

  /** Back to the first delay (once a connection is live again). */
  reset(): void {
    this.#attempts = 0;
  }
}

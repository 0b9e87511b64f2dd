// A getToken for the tests that can hold a reconnect: while `hold()`ed, its calls wait until
// `release()`, so that a test can publish while the client is kept out.

import { token } from './hub.mjs';

/** Tokens for `user`; `calls` has the time of every call. */
export function gatedTokens(user) {
  let gate = null;
  const calls = [];
  return {
    calls,
    hold() {
      let open;
      gate = { promise: new Promise((resolve) => (open = resolve)), open };
    },
    release() {
      gate?.open();
      gate = null;
    },
    async getToken() {
      calls.push(Date.now());
      if (gate) await gate.promise;
      return token(user);
    },
  };
}

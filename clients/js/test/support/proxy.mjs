// A TCP proxy in front of a hub, standing in for the network: `cut()` drops every connection
// through it (the client sees its transport close), and while `down` it refuses new ones.

import net from 'node:net';

export class Proxy {
  /** Listens on a free local port and forwards to `target` (`http://host:port`). */
  static async start(target) {
    const proxy = new Proxy(target);
    await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.url = `http://127.0.0.1:${proxy.server.address().port}`;
    return proxy;
  }

  constructor(target) {
    this.target = new URL(target);
    this.down = false;
    this.sockets = new Set();
    this.server = net.createServer((client) => this.#forward(client));
  }

  #forward(client) {
    if (this.down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(this.target.port), this.target.hostname);
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      this.sockets.add(from);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
      from.pipe(to);
    }
  }

  /** Drops every open connection; with `downMs`, refuses new ones for that long too. */
  cut(downMs = 0) {
    this.down = downMs > 0;
    for (const socket of this.sockets) socket.destroy();
    if (this.down) setTimeout(() => (this.down = false), downMs);
  }

  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

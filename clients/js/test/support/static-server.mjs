// A tiny static server for the browser test: the test page, the built library under /lib/, and
// socket.io-client's ESM build as /vendor/socket.io-client.js; nothing else.

import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json' };

/** Where each URL path is served from. */
function fileFor(urlPath) {
  if (urlPath === '/') return path.join(root, 'test/browser/page.html');
  if (urlPath === '/vendor/socket.io-client.js') return path.join(root, 'node_modules/socket.io-client/dist/socket.io.esm.min.js');
  if (urlPath === '/vendor/socket.io.esm.min.js.map') return path.join(root, 'node_modules/socket.io-client/dist/socket.io.esm.min.js.map');
  const lib = urlPath.match(/^\/lib\/([\w.-]+\.js(?:\.map)?)$/);
  return lib ? path.join(root, 'dist', lib[1]) : null;
}

/** Starts the server on a free port; resolves `{ url, close() }`. */
export async function startStaticServer() {
  const server = http.createServer(async (req, res) => {
    const file = fileFor(new URL(req.url, 'http://x').pathname);
    try {
      if (!file) throw new Error('not served');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

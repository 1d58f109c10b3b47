// Why this exists: 2Bot fetches Client ID Metadata Documents (CIMD) over HTTPS from a URL
// a stranger chooses, so its fetcher is tested against a real HTTPS server that serves good
// documents and misbehaves on purpose. tests/common/cimd.rs starts this script with node
// (no npm packages: node:https only) and makes its certificate with the openssl CLI.
//
// Environment:
//   CIMD_DOCS_DIR  a directory; GET /a/b.json serves the file a/b.json in it as JSON, with
//                  every `{base}` in the file replaced by the origin the client asked for
//                  (https://<Host header>), so a document can name its own URL as client_id
//                  before the port is known.
//   CIMD_CERT, CIMD_KEY  the server's certificate chain and key (PEM).
//   CIMD_PORT      port on 127.0.0.1 (0 = any free one).
// Routes that misbehave on purpose:
//   /slow          never answers;
//   /huge          1 MiB with a Content-Length;
//   /huge-chunked  1 MiB streamed without a Content-Length;
//   /redirect      302 to /doc.
// Prints `listening https://127.0.0.1:PORT` once it listens, then `request METHOD PATH`
// for every request it receives (so a test can tell that nothing was fetched).

import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';

const docs = path.resolve(process.env.CIMD_DOCS_DIR || '.');
const MIB = 1024 * 1024;
const hanging = new Set();

function serveDocument(req, res, pathname) {
  const file = path.resolve(docs, '.' + pathname);
  if (!file.startsWith(docs + path.sep)) {
    res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad path"}');
    return;
  }
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    return;
  }
  const body = text.replaceAll('{base}', `https://${req.headers.host}`);
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function handle(req, res) {
  const { pathname } = new URL(req.url, 'https://placeholder');
  console.log(`request ${req.method} ${pathname}`);
  switch (pathname) {
    case '/slow':
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    case '/huge':
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': MIB });
      res.end(Buffer.alloc(MIB, 0x20));
      return;
    case '/huge-chunked': {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      let sent = 0;
      const more = () => {
        while (sent < MIB) {
          sent += chunk.length;
          if (!res.write(chunk)) return res.once('drain', more);
        }
        res.end();
      };
      res.on('error', () => {});
      more();
      return;
    }
    case '/redirect':
      res.writeHead(302, { location: '/doc' }).end();
      return;
    default:
      serveDocument(req, res, pathname);
  }
}

const server = https.createServer(
  { cert: readFileSync(process.env.CIMD_CERT), key: readFileSync(process.env.CIMD_KEY) },
  handle,
);
server.on('tlsClientError', () => {}); // a client refusing our test CA is a test case, not a crash
server.listen(Number(process.env.CIMD_PORT || 0), '127.0.0.1', () => {
  console.log(`listening https://127.0.0.1:${server.address().port}`);
});

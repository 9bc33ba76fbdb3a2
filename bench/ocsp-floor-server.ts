/**
 * The floor of the ocsp bench section (bench/ocsp.ts forks it): a bare node:http server in its own
 * process, on the same keep-alive settings as fleetca's plain listener, that reads each request
 * body and answers a fixed 500-byte body (about an OCSP response's size) with the OCSP content
 * type. No OCSP work at all: what node:http plus the load client cost on this machine.
 * Sends { port } to the parent once listening; exits when the parent disconnects.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const body = Buffer.alloc(500, 0x41);
const server = http.createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'application/ocsp-response', 'Content-Length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 5_000;
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
process.on('disconnect', () => process.exit(0));

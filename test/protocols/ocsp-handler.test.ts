/**
 * The bare node:http OCSP handler's own behaviour, on a real server and real sockets: answers
 * are queued and written once per event-loop turn, so each must still reach its own request, in
 * order on a connection, and one answer that cannot be written must not strand the others of its
 * turn. (The OCSP content itself is tested through openssl in test/integration/revocation.test.ts.)
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { OcspAnswer } from '../../src/ca/ocsp.js';
import { createOcspHandler } from '../../src/protocols/ocsp/handler.js';

interface Harness {
  port: number;
  logs: string[];
  close(): Promise<void>;
}

let open: Harness | null = null;
afterEach(async () => {
  await open?.close();
  open = null;
});

/** A server whose "OCSP answer" is the request body reversed; a body "boom" fails on writing. */
async function start(): Promise<Harness> {
  const logs: string[] = [];
  const handler = createOcspHandler({
    respond: (der): OcspAnswer => {
      const status = der.toString() === 'boom' ? 'internalError' : 'successful';
      return { der: Buffer.from(der).reverse(), status, live: true, source: 'live' };
    },
    maxBody: 1024,
    httpMaxAgeMs: 60_000,
    now: () => new Date(),
    count: (status) => {
      if (status === 'internalError') throw new Error('metric backend failed');
    },
    log: (_o, msg) => logs.push(msg),
  });
  const server = http.createServer((req, res) => {
    if (!handler(req, res)) {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    logs,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function post(port: number, agent: http.Agent, body: string): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/ocsp', method: 'POST', agent, headers: { 'Content-Type': 'application/ocsp-request' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('OCSP handler: answers written once per event-loop turn', () => {
  it('64 concurrent requests on 64 connections each get their own answer', async () => {
    open = await start();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    try {
      for (let round = 0; round < 3; round++) {
        const bodies = Array.from({ length: 64 }, (_, i) => `request-${round}-${i}`);
        const answers = await Promise.all(bodies.map((b) => post(open!.port, agent, b)));
        answers.forEach((a, i) => {
          expect(a.status).toBe(200);
          expect(a.type).toBe('application/ocsp-response');
          expect(a.body).toBe([...bodies[i]!].reverse().join(''));
        });
      }
    } finally {
      agent.destroy();
    }
  });

  it('pipelined requests on one connection are answered in order', async () => {
    open = await start();
    const sock = net.connect(open.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const bodies = ['first', 'second', 'third'];
    const got: Buffer[] = [];
    sock.on('data', (c: Buffer) => got.push(c));
    sock.write(bodies.map((b) => `POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: ${b.length}\r\n\r\n${b}`).join(''));
    await expect.poll(() => Buffer.concat(got).toString().split('HTTP/1.1 200').length - 1, { timeout: 5000 }).toBe(3);
    const text = Buffer.concat(got).toString();
    const order = bodies.map((b) => text.indexOf([...b].reverse().join('')));
    expect(order.every((x) => x > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    sock.destroy();
  });

  it('an answer that fails while being written closes only its own connection, logged; the others of the turn are answered', async () => {
    open = await start();
    const agents = [0, 1, 2].map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    try {
      const results = await Promise.allSettled([post(open.port, agents[0]!, 'one'), post(open.port, agents[1]!, 'boom'), post(open.port, agents[2]!, 'two')]);
      expect(results[0]).toMatchObject({ status: 'fulfilled', value: { status: 200, body: 'eno' } });
      expect(results[1]!.status).toBe('rejected');
      expect(results[2]).toMatchObject({ status: 'fulfilled', value: { status: 200, body: 'owt' } });
      expect(open.logs).toContain('OCSP answer could not be written');
      // the server goes on answering
      expect(await post(open.port, agents[0]!, 'again')).toMatchObject({ status: 200, body: 'niaga' });
    } finally {
      for (const a of agents) a.destroy();
    }
  });
});

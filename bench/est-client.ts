/**
 * The EST load generator, run in its own process (bench/est.ts forks it through tsx) so that its
 * CPU is not counted inside the server's event loop. The same client drives fleetca and the bare
 * https floor: `concurrency` loops, each sending its next request as soon as the previous answer
 * has been read, on a new TLS connection per request (a full handshake: no session resumption)
 * or, with keepAlive, on one kept-alive connection per loop.
 *
 * HTTP/1.1 is written and read by hand on a tls.connect socket: node's https client costs about
 * 0.8 ms more CPU per request than the TLS handshake itself (~1.7 ms client-side on the 2-core
 * target), and on a shared machine every client millisecond is taken from the server under test.
 * Answers must carry a Content-Length (fleetca's and the floor's do).
 *
 * Messages from the parent:  { type: 'prepare', job: ClientJob } → { type: 'ready' }, then
 *                            { type: 'go' } → { type: 'result', value: ClientResult }
 */
import { AnswerReader, percentile, serveLoadClient } from './client-util.js';
import tls from 'node:tls';

export interface ClientItem {
  /** The request body (a base64 PKCS#10). */
  body: string;
  /** The Authorization header (HTTP Basic), if any. */
  authorization?: string;
  /** Index into ClientJob.identities: the TLS client certificate to present, if any. */
  identity?: number;
}

export interface ClientJob {
  host: string;
  port: number;
  path: string;
  /** PEM of the root the server's chain is verified against when verifyServer is set. */
  caPem: string;
  servername: string;
  /**
   * Verify the server's chain and name, as a device would. Off in the measured runs: node's client
   * then builds the whole peer chain as JS objects (getPeerCertificate(true) for
   * checkServerIdentity), about a third of the client's CPU, which on a shared machine is taken
   * from the server under test. The warm-up runs verify.
   */
  verifyServer: boolean;
  /** TLS client certificates (PEM cert + PKCS#8 key), referenced by ClientItem.identity. */
  identities?: Array<{ certPem: string; keyPem: string }>;
  items: ClientItem[];
  /** Reuse the items cyclically (the floor consumes nothing) until maxMs. */
  cycle: boolean;
  concurrency: number;
  keepAlive: boolean;
  /** No request is started after this many ms (the ones in flight complete). */
  maxMs: number;
  expectStatus: number;
}

export interface ClientResult {
  completed: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  /** Per-request latency: request start to the last byte of the answer. */
  p50Ms: number;
  p99Ms: number;
  /** CPU the client used during the run (user + system), ms. */
  cpuMs: number;
  /** Every item was sent before the deadline (the run ended early). */
  exhausted: boolean;
  /** Body size of the last good answer. */
  answerBytes: number;
}



/** Builds a job's TLS contexts and request bytes (not measured: parsing PEM is set-up), then waits for go(). */
function prepare(job: ClientJob): { go(): Promise<ClientResult> } {
  const ca = job.verifyServer ? { ca: job.caPem } : {};
  const base = tls.createSecureContext(ca);
  const contexts = (job.identities ?? []).map((i) => tls.createSecureContext({ ...ca, cert: i.certPem, key: i.keyPem }));
  const requests = job.items.map((item) => {
    const body = Buffer.from(item.body, 'latin1');
    const head =
      `POST ${job.path} HTTP/1.1\r\nHost: ${job.servername}:${job.port}\r\nContent-Type: application/pkcs10\r\n` +
      `Content-Transfer-Encoding: base64\r\nContent-Length: ${body.length}\r\n` +
      (item.authorization ? `Authorization: ${item.authorization}\r\n` : '') +
      `Connection: ${job.keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`;
    return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), body]), context: item.identity !== undefined ? contexts[item.identity]! : base };
  });
  return { go: () => run(job, requests) };
}

async function run(job: ClientJob, requests: Array<{ bytes: Buffer; context: tls.SecureContext }>): Promise<ClientResult> {
  const latencies = new Float64Array(job.cycle ? 1 << 20 : job.items.length);
  let completed = 0;
  let answerBytes = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  const fail = (s: string) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(s);
  };
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + job.maxMs;

  const connect = (context: tls.SecureContext) =>
    tls
      .connect({ host: job.host, port: job.port, servername: job.servername, secureContext: context, rejectUnauthorized: job.verifyServer })
      // a reset after the answer was read is not a failure (the request's own listener counts the rest)
      .on('error', () => undefined);

  /** One request; on a kept-alive `socket` when given (and still open), else on a new connection. */
  const one = (r: (typeof requests)[number], kept: { socket: tls.TLSSocket | null } | null) =>
    new Promise<void>((resolve) => {
      const start = performance.now();
      let socket = kept?.socket;
      if (!socket || socket.destroyed) {
        socket = connect(r.context);
        if (kept) {
          kept.socket = socket;
          const s = socket;
          s.on('close', () => {
            if (kept.socket === s) kept.socket = null;
          });
        }
      }
      const s = socket;
      const reader = new AnswerReader();
      let done = false;
      const finish = (error?: string) => {
        if (done) return;
        done = true;
        s.off('data', onData);
        s.off('error', onError);
        s.off('close', onClose);
        if (error) {
          fail(error);
          s.destroy();
        } else if (!kept) {
          s.end();
        }
        resolve();
      };
      const onData = (c: Buffer) => {
        let a: { status: number; body: Buffer } | null;
        try {
          a = reader.push(c);
        } catch (e) {
          finish((e as Error).message);
          return;
        }
        if (!a) return;
        if (a.status !== job.expectStatus) {
          finish(`HTTP ${a.status}: ${a.body.toString('utf8').slice(0, 200).trim()}`);
          return;
        }
        if (completed < latencies.length) latencies[completed] = performance.now() - start;
        completed++;
        answerBytes = a.body.length;
        finish();
      };
      const onError = (e: Error) => finish(`socket: ${e.message}`);
      const onClose = () => finish('connection closed before the answer was complete');
      s.on('data', onData);
      s.on('error', onError);
      s.on('close', onClose);
      s.write(r.bytes);
    });

  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      const kept = job.keepAlive ? { socket: null as tls.TLSSocket | null } : null;
      for (;;) {
        if (performance.now() >= deadline) break;
        if (!job.cycle && next >= requests.length) break;
        await one(requests[next++ % requests.length]!, kept);
      }
      kept?.socket?.end();
    }),
  );
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const sorted = latencies.slice(0, Math.min(completed, latencies.length)).sort();
  return {
    completed,
    errors,
    errorSamples,
    elapsedMs,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    cpuMs: (cpu.user + cpu.system) / 1000,
    exhausted: !job.cycle && next >= job.items.length,
    answerBytes,
  };
}

serveLoadClient<ClientJob, ClientResult>(prepare);

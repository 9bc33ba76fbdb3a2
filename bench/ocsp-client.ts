/**
 * The OCSP load generator, run in its own process (bench/ocsp.ts forks it through tsx):
 * `concurrency` loops, each POSTing its next prepared OCSPRequest (application/ocsp-request) as soon
 * as the previous answer has been read, HTTP/1.1 written and read by hand on net.connect sockets
 * (as bench/scep-client.ts does).
 *
 *   keep-alive              one connection per loop for the whole run (fleetca, the bare floor)
 *   connection per request  HTTP/1.0, a new connection for every request: `openssl ocsp -port`
 *                           answers HTTP/1.0 and closes every connection after one answer
 *
 * Requests are built in `prepare` (not measured) from the issuer's SHA-1 hashes and 16-byte serials:
 * an OCSPRequest with one SHA-1 CertID and no nonce, for a sequence of item indices drawn before the
 * run (uniformly at random over the items; the sequence is reused from its start if a run gets
 * through it, which the result reports). Answers are only framed during the run (HTTP 200 with a
 * body of Content-Length; anything else is an error); after the clock stopped a sample of them (the
 * first 20 000, then every 16th) is decoded (decodeOcspResponse): a successful OCSPResponse with
 * one SingleResponse whose CertID is the request's, and status good or revoked as expected.
 *
 * Messages from the parent:  { type: 'prepare', job: OcspClientJob } → { type: 'ready' }, then
 *                            { type: 'go' } → { type: 'result', value: OcspClientResult }
 */
import { AnswerReader, percentile, serveLoadClient } from './client-util.js';
import net from 'node:net';
import { decodeOcspResponse, encodeCertId } from '../src/pki/ocsp.js';
import { encodeSequence } from '../src/pki/der.js';

export interface OcspClientJob {
  host: string;
  port: number;
  path: string;
  /** SHA-1 issuerNameHash and issuerKeyHash of the CertIDs. */
  nameHash: Uint8Array;
  keyHash: Uint8Array;
  /** The items: 16-byte serials, concatenated. */
  serials: Uint8Array;
  /** Per item: 1 when the certificate is revoked (the expected status), else 0. */
  revoked: Uint8Array;
  /** Requests drawn (item indices) before the run; the run reuses them from the start when it gets through them. */
  draws: number;
  /** Seed of the draw. */
  seed: number;
  concurrency: number;
  /** No request is started after this many ms (the ones in flight complete). */
  maxMs: number;
  connectionPerRequest: boolean;
  /** Decode and check a sample of the answers after the run (false: the floor's fixed body). */
  check: boolean;
  /** End the run once every drawn request was sent (warm-up), instead of reusing the sequence. */
  stopAtEnd?: boolean;
}

export interface OcspClientResult {
  completed: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU the client used during the run (user + system), ms. */
  cpuMs: number;
  /** The run got through the drawn sequence and reused it. */
  wrapped: boolean;
  /** Distinct items requested. */
  distinct: number;
  /** Answers decoded and checked (a sample, when job.check). */
  checked: number;
  answerBytes: number;
  /** Answer statuses seen, e.g. { good: 990, revoked: 10 }. */
  statuses: Record<string, number>;
}



/** mulberry32: a small seeded PRNG (the draws must not cost the run anything). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Prepared {
  job: OcspClientJob;
  /** The drawn item of each request slot, and its full HTTP message. */
  seq: Uint32Array;
  messages: Buffer[];
  certIds: Map<number, Buffer>;
}

function prepare(job: OcspClientJob): Prepared {
  const n = job.serials.length / 16;
  const rand = prng(job.seed);
  const seq = new Uint32Array(job.draws);
  for (let k = 0; k < seq.length; k++) seq[k] = Math.floor(rand() * n);
  const built = new Map<number, Buffer>();
  const certIds = new Map<number, Buffer>();
  const nameHash = Buffer.from(job.nameHash);
  const keyHash = Buffer.from(job.keyHash);
  const version = job.connectionPerRequest ? 'HTTP/1.0' : 'HTTP/1.1';
  const conn = job.connectionPerRequest ? 'close' : 'keep-alive';
  const messages = Array.from(seq, (i) => {
    let m = built.get(i);
    if (!m) {
      const serial = Buffer.from(job.serials.buffer, job.serials.byteOffset + i * 16, 16);
      const certId = encodeCertId('sha1', nameHash, keyHash, Buffer.from(serial));
      certIds.set(i, certId);
      // OCSPRequest { tbsRequest { requestList { Request { reqCert } } } }: no nonce, no signature
      const body = encodeSequence(encodeSequence(encodeSequence(encodeSequence(certId))));
      const head = `POST ${job.path} ${version}\r\nHost: ${job.host}:${job.port}\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${body.length}\r\nConnection: ${conn}\r\n\r\n`;
      m = Buffer.concat([Buffer.from(head, 'latin1'), body]);
      built.set(i, m);
    }
    return m;
  });
  return { job, seq, messages, certIds };
}

async function run(p: Prepared): Promise<OcspClientResult> {
  const { job, seq, messages } = p;
  let latencies = new Float64Array(1 << 16);
  /** The answers, with the slot (into seq) they answer; checked after the run. */
  const answers: Buffer[] = [];
  const slots: number[] = [];
  let completed = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  const fail = (s: string) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(s);
  };
  let next = 0;
  let wrapped = false;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + job.maxMs;

  const connect = () => net.connect({ host: job.host, port: job.port, noDelay: true }).on('error', () => undefined);

  const one = (slot: number, kept: { socket: net.Socket | null }) =>
    new Promise<void>((resolve) => {
      const start = performance.now();
      let s = job.connectionPerRequest ? null : kept.socket;
      if (!s || s.destroyed) {
        const fresh = connect();
        kept.socket = fresh;
        fresh.on('close', () => {
          if (kept.socket === fresh) kept.socket = null;
        });
        s = fresh;
      }
      const socket = s;
      const reader = new AnswerReader();
      let done = false;
      const finish = (error?: string) => {
        if (done) return;
        done = true;
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        if (error) {
          fail(error);
          socket.destroy();
        } else if (job.connectionPerRequest) {
          socket.destroy();
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
        if (a.status !== 200) {
          finish(`HTTP ${a.status}: ${a.body.toString('utf8').slice(0, 200).trim()}`);
          return;
        }
        if (completed === latencies.length) {
          const bigger = new Float64Array(latencies.length * 2);
          bigger.set(latencies);
          latencies = bigger;
        }
        latencies[completed++] = performance.now() - start;
        // kept for the checks: the first 20 000 answers, then every 16th (memory)
        if (completed <= 20_000 || completed % 16 === 0) {
          answers.push(Buffer.from(a.body));
          slots.push(slot);
        }
        finish();
      };
      const onError = (e: Error) => finish(`socket: ${e.message}`);
      const onClose = () => finish('connection closed before the answer was complete');
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
      socket.write(messages[slot]!);
    });

  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      const kept = { socket: null as net.Socket | null };
      while (performance.now() < deadline) {
        let slot = next++;
        if (slot >= seq.length && job.stopAtEnd) break;
        if (slot >= seq.length) {
          wrapped = true;
          slot %= seq.length;
        }
        await one(slot, kept);
      }
      kept.socket?.end();
    }),
  );
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const sorted = latencies.slice(0, completed).sort();

  // after the clock stopped: every answer decoded and checked
  const statuses: Record<string, number> = {};
  let checked = 0;
  let answerBytes = 0;
  for (let k = 0; k < answers.length; k++) {
    const body = answers[k]!;
    answerBytes = body.length;
    if (!job.check) continue;
    const item = seq[slots[k]!]!;
    try {
      const r = decodeOcspResponse(body);
      if (r.status !== 'successful' || !r.basic) throw new Error(`responseStatus ${r.status}`);
      if (r.basic.responses.length !== 1) throw new Error(`${r.basic.responses.length} SingleResponses`);
      const single = r.basic.responses[0]!;
      if (!single.certIdDer.equals(p.certIds.get(item)!)) throw new Error('CertID is not the request\'s');
      const want = job.revoked[item] === 1 ? 'revoked' : 'good';
      if (single.status.type !== want) throw new Error(`status ${single.status.type}, expected ${want}`);
      statuses[want] = (statuses[want] ?? 0) + 1;
      checked++;
    } catch (e) {
      fail(`item ${item}: ${(e as Error).message}`);
    }
  }
  return {
    completed,
    errors,
    errorSamples,
    elapsedMs,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    cpuMs: (cpu.user + cpu.system) / 1000,
    wrapped,
    distinct: p.certIds.size,
    checked,
    answerBytes,
    statuses,
  };
}

serveLoadClient<OcspClientJob, OcspClientResult>((job) => {
  const p = prepare(job);
  return { go: () => run(p) };
});

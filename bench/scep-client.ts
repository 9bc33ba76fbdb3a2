/**
 * The SCEP load generator, run in its own process (bench/scep.ts forks it through tsx) so that its
 * CPU is not counted inside the server's event loop: `concurrency` loops, each on one kept-alive
 * plain-HTTP connection, POSTing its next prepared PKCSReq (raw DER, no Content-Type, as strongSwan
 * pki sends PKIOperation) as soon as the previous answer has been read.
 *
 * HTTP/1.1 is written and read by hand on a net.connect socket (as bench/est-client.ts does over
 * TLS): on a shared machine every client millisecond is taken from the server under test. For the
 * same reason the answers are only framed during the run; each one is decoded and checked (a
 * CertRep, pkiStatus SUCCESS, the request's transactionID) after the clock has stopped.
 *
 * Messages from the parent:  { type: 'prepare', job: ScepClientJob } → { type: 'ready' }, then
 *                            { type: 'go' } → { type: 'result', value: ScepClientResult }
 */
import { AnswerReader, percentile, serveLoadClient } from './client-util.js';
import net from 'node:net';
import { decodePkiMessage, SCEP_MESSAGE_TYPE, SCEP_PKI_STATUS } from '../src/pki/scep-cms.js';

export interface ScepClientItem {
  /** The PKCSReq pkiMessage (DER). */
  body: Uint8Array;
  /** Its transactionID: the CertRep must carry the same. */
  transactionId: string;
}

export interface ScepClientJob {
  host: string;
  port: number;
  /** e.g. /scep?operation=PKIOperation */
  path: string;
  items: ScepClientItem[];
  concurrency: number;
  /** No request is started after this many ms (the ones in flight complete). */
  maxMs: number;
  /** Return the first few answers' bodies (the parent opens them with the requesters' keys). */
  samples?: number;
}

export interface ScepClientResult {
  completed: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  /** Per-request latency: request start to the last byte of the answer. */
  p50Ms: number;
  p99Ms: number;
  /** CPU the client used during the run (user + system), ms; the checks afterwards not included. */
  cpuMs: number;
  /** Every item was sent before the deadline (the run ended early). */
  exhausted: boolean;
  /** Body size of the last good answer. */
  answerBytes: number;
  /** The first `job.samples` good answers: item index and CertRep DER. */
  samples: Array<{ index: number; body: Uint8Array }>;
}



/** Why a 200 answer is not the CertRep SUCCESS for `transactionId`, or null when it is. */
function certRepProblem(body: Buffer, transactionId: string): string | null {
  let m: ReturnType<typeof decodePkiMessage>;
  try {
    m = decodePkiMessage(body);
  } catch (e) {
    return `not a pkiMessage: ${(e as Error).message}`;
  }
  if (m.messageType !== SCEP_MESSAGE_TYPE.CertRep) return `messageType ${m.messageType}, not CertRep`;
  if (m.transactionId !== transactionId) return `transactionID ${m.transactionId}, expected ${transactionId}`;
  if (m.pkiStatus !== SCEP_PKI_STATUS.SUCCESS) return `pkiStatus ${m.pkiStatus ?? '?'} failInfo ${m.failInfo ?? '-'}${m.failInfoText ? ` (${m.failInfoText})` : ''}`;
  if (!m.content) return 'CertRep SUCCESS without an envelope';
  return null;
}

/** Builds the request bytes (not measured), then waits for go(). */
function prepare(job: ScepClientJob): { go(): Promise<ScepClientResult> } {
  const requests = job.items.map((item) => {
    const body = Buffer.from(item.body.buffer, item.body.byteOffset, item.body.byteLength);
    const head = `POST ${job.path} HTTP/1.1\r\nHost: ${job.host}:${job.port}\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), body]);
  });
  return { go: () => run(job, requests) };
}

async function run(job: ScepClientJob, requests: Buffer[]): Promise<ScepClientResult> {
  const latencies = new Float64Array(requests.length);
  /** The answers, by item index, checked after the run. */
  const answers: Array<Buffer | undefined> = new Array<Buffer | undefined>(requests.length);
  let completed = 0;
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

  const connect = () => net.connect({ host: job.host, port: job.port, noDelay: true }).on('error', () => undefined);

  /** One request on the loop's kept-alive socket (a new one when the server closed it). */
  const one = (index: number, kept: { socket: net.Socket | null }) =>
    new Promise<void>((resolve) => {
      const start = performance.now();
      let s = kept.socket;
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
        latencies[completed++] = performance.now() - start;
        answers[index] = Buffer.from(a.body);
        finish();
      };
      const onError = (e: Error) => finish(`socket: ${e.message}`);
      const onClose = () => finish('connection closed before the answer was complete');
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
      socket.write(requests[index]!);
    });

  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      const kept = { socket: null as net.Socket | null };
      while (performance.now() < deadline && next < requests.length) await one(next++, kept);
      kept.socket?.end();
    }),
  );
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const sorted = latencies.slice(0, completed).sort();

  // every answer is checked, after the clock stopped
  let answerBytes = 0;
  const samples: Array<{ index: number; body: Uint8Array }> = [];
  let good = 0;
  answers.forEach((body, i) => {
    if (!body) return;
    const problem = certRepProblem(body, job.items[i]!.transactionId);
    if (problem) {
      fail(`item ${i}: ${problem}`);
      return;
    }
    good++;
    answerBytes = body.length;
    if (samples.length < (job.samples ?? 0)) samples.push({ index: i, body });
  });
  return {
    completed: good,
    errors,
    errorSamples,
    elapsedMs,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    cpuMs: (cpu.user + cpu.system) / 1000,
    exhausted: next >= requests.length,
    answerBytes,
    samples,
  };
}

serveLoadClient<ScepClientJob, ScepClientResult>(prepare);

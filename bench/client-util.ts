/**
 * What the forked load clients (est-client, scep-client, ocsp-client) share: the HTTP answer
 * framing they do by hand, the latency percentile, and the prepare/go message loop with the parent
 * (bench/load-util.ts ForkedLoadClient).
 */

/** The p-quantile of sorted latencies (nearest rank). */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** Reads one HTTP/1.x answer off a socket: status and body, framed by Content-Length. */
export class AnswerReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private head: { status: number; bodyStart: number; length: number } | null = null;

  /** Feeds data; returns the answer once complete. */
  push(c: Buffer): { status: number; body: Buffer } | null {
    this.chunks.push(c);
    this.size += c.length;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [all];
    if (!this.head) {
      const end = all.indexOf(CRLF2);
      if (end < 0) return null;
      const text = all.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? NaN);
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(text);
      if (!len) throw new Error(`answer without Content-Length: ${text.split('\r\n')[0]}`);
      this.head = { status, bodyStart: end + 4, length: Number(len[1]) };
    }
    if (all.length < this.head.bodyStart + this.head.length) return null;
    const out = { status: this.head.status, body: all.subarray(this.head.bodyStart, this.head.bodyStart + this.head.length) };
    this.chunks = [];
    this.size = 0;
    this.head = null;
    return out;
  }
}

/**
 * The child side of ForkedLoadClient: `{type:'prepare', job}` → prepare (not measured) →
 * `{type:'ready'}`; `{type:'go'}` → the run → `{type:'result', value}`; errors as `{type:'error'}`.
 */
export function serveLoadClient<J, R>(prepare: (job: J) => { go(): Promise<R> }): void {
  let prepared: { go(): Promise<R> } | null = null;
  process.on('message', (m: { type: 'prepare'; job: J } | { type: 'go' }) => {
    const reply = (p: Promise<unknown>, type: string) =>
      p.then(
        (value) => process.send!({ type, value }),
        (e: unknown) => process.send!({ type: 'error', message: (e as Error).stack ?? String(e) }),
      );
    if (m.type === 'prepare') {
      reply(
        (async () => {
          prepared = prepare(m.job);
        })(),
        'ready',
      );
    } else if (m.type === 'go') {
      const p = prepared;
      prepared = null;
      reply(p ? p.go() : Promise.reject(new Error('go before prepare')), 'result');
    }
  });
  process.on('disconnect', () => process.exit(0));
}

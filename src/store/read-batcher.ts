/**
 * Batched point reads: while one query of a kind is in flight, every caller asking for the same
 * kind of row waits, and the next single query (`= ANY($1)`) answers all of them. A lone caller
 * pays nothing (its query starts in the same turn of the event loop); under load, N enrollments
 * cost one round trip instead of N. Each round trip to PostgreSQL costs the event loop a socket
 * write (measured ~60 µs on the 2-core target, most of it the wake-up of the backend) plus
 * node-pg's encoding and parsing, and the backend a statement.
 */
export class ReadBatcher<Req, Res> {
  private queue: Array<{ req: Req; resolve: (r: Res) => void; reject: (e: unknown) => void }> = [];
  private inFlight = false;

  /**
   * @param run answers a batch: one result per request, in request order
   * @param maxBatch most requests in one query
   * @param closed refuses new requests (the store is closed)
   */
  constructor(
    private readonly run: (reqs: Req[]) => Promise<Res[]>,
    private readonly maxBatch: number,
    private readonly closed: () => Error | null,
  ) {}

  get(req: Req): Promise<Res> {
    const refused = this.closed();
    if (refused) return Promise.reject(refused);
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (!this.inFlight) queueMicrotask(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    if (this.inFlight || this.queue.length === 0) return;
    this.inFlight = true;
    const batch = this.queue.splice(0, this.maxBatch);
    try {
      const results = await this.run(batch.map((b) => b.req));
      batch.forEach((b, i) => b.resolve(results[i]!));
    } catch (err) {
      for (const b of batch) b.reject(err);
    } finally {
      this.inFlight = false;
      if (this.queue.length > 0) void this.flush();
    }
  }
}

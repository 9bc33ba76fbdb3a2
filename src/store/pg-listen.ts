/**
 * A dedicated PostgreSQL connection that LISTENs for what other processes changed: certificate
 * status changes (`fleetca_status`, from the trigger of migration 0005) and published CRLs
 * (`fleetca_crl`). It reconnects with backoff; after any gap it reports `resync`, because
 * notifications sent while it was away are lost.
 */
import pg from 'pg';

export interface ChangeListener {
  close(): Promise<void>;
  /** Resolves once the first LISTEN is active. */
  ready: Promise<void>;
}

export interface ChangeHandlers {
  status(issuerId: number, serial: string): void;
  crl(issuerId: number, kind: 'full' | 'delta', shard: number, number: bigint): void;
  /** New webhook deliveries were queued (`fleetca_events`). */
  events(): void;
  /** A CA was added (a rollover, `fleetca_issuers`). */
  issuers?(): void;
  /** The connection was lost and re-established: state derived from notifications is stale. */
  resync(): void;
  log(msg: string): void;
}

export function listenForChanges(config: pg.ClientConfig, h: ChangeHandlers): ChangeListener {
  let client: pg.Client | null = null;
  let closed = false;
  let delay = 200;
  let first = true;
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  let timer: NodeJS.Timeout | null = null;

  const onNotification = (m: pg.Notification) => {
    const p = (m.payload ?? '').split(':');
    if (m.channel === 'fleetca_status' && p.length === 2) h.status(Number(p[0]), p[1]!);
    else if (m.channel === 'fleetca_crl' && p.length === 4) h.crl(Number(p[0]), p[1] as 'full' | 'delta', Number(p[2]), BigInt(p[3]!));
    else if (m.channel === 'fleetca_events') h.events();
    else if (m.channel === 'fleetca_issuers') h.issuers?.();
  };

  const connect = async () => {
    if (closed) return;
    const c = new pg.Client(config);
    c.on('notification', onNotification);
    c.on('error', (e) => {
      h.log(`change listener connection lost: ${e.message}`);
      retry(c);
    });
    c.on('end', () => retry(c));
    try {
      await c.connect();
      await c.query('LISTEN fleetca_status');
      await c.query('LISTEN fleetca_crl');
      await c.query('LISTEN fleetca_events');
      await c.query('LISTEN fleetca_issuers');
    } catch (e) {
      h.log(`change listener cannot connect: ${(e as Error).message}`);
      retry(c);
      return;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    delay = 200;
    if (!first) h.resync();
    first = false;
    markReady();
  };

  const retry = (c: pg.Client) => {
    if (client === c) client = null;
    c.removeAllListeners('end');
    c.end().catch(() => undefined);
    if (closed || timer) return;
    if (!first) h.resync(); // stale from now until reconnected
    timer = setTimeout(() => {
      timer = null;
      void connect();
    }, delay);
    timer.unref();
    delay = Math.min(delay * 2, 10_000);
  };

  void connect();
  return {
    ready,
    close: async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      markReady();
      if (c) {
        c.removeAllListeners('end');
        await c.end().catch(() => undefined);
      }
    },
  };
}

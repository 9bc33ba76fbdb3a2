/**
 * Static PKI material over plain HTTP: the caIssuers URLs of the AIA extension
 * (`/ca/<issuer>.crt`, DER, application/pkix-cert — RFC 5280 §4.2.2.1) and the CRLs named by the
 * CDP (`/crl/<issuer>.crl` DER application/pkix-crl, `.pem` for PEM consumers). Serves stored
 * bytes only; signing happens in the core.
 */
import crypto from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { pemEncode } from '../../pki/pem.js';
import type { CrlRecord, IssuerRecord } from '../../ca/ports.js';

export interface PkiFilesDeps {
  issuers: () => ReadonlyMap<string, IssuerRecord>;
  latestCrl: (issuerName: string, kind: 'full' | 'delta', shard: number) => Promise<CrlRecord | null>;
  /** Number of CRL shards (1 = not partitioned). */
  shards: number;
  /** Cap of Cache-Control max-age, ms: CRLs are republished on change, long before nextUpdate. */
  httpMaxAgeMs: number;
  now: () => Date;
}

/** `<issuer>`, `<issuer>-delta` or `<issuer>-<shard>` → what to serve; null when none. */
function crlScope(stem: string, deps: PkiFilesDeps): { issuer: string; kind: 'full' | 'delta'; shard: number } | null {
  const issuers = deps.issuers();
  if (issuers.has(stem)) return { issuer: stem, kind: 'full', shard: 0 };
  const delta = /^(.+)-delta$/.exec(stem);
  if (delta && issuers.has(delta[1]!)) return { issuer: delta[1]!, kind: 'delta', shard: 0 };
  const shard = /^(.+)-([1-9]\d{0,2})$/.exec(stem);
  if (shard && issuers.has(shard[1]!) && Number(shard[2]) <= deps.shards && deps.shards > 1) return { issuer: shard[1]!, kind: 'full', shard: Number(shard[2]) };
  return null;
}

const NAME = /^[a-z][a-z0-9-]{1,30}$/;

function sendCached(req: Request, res: Response, body: Buffer | string, type: string, lastModified: Date, expires: Date | null, now: Date, maxAgeCapMs = Infinity): void {
  const etag = `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  res.setHeader('ETag', etag);
  res.setHeader('Last-Modified', lastModified.toUTCString());
  if (expires) {
    const maxAge = Math.max(0, Math.floor(Math.min(expires.getTime() - now.getTime(), maxAgeCapMs) / 1000));
    res.setHeader('Cache-Control', `public, max-age=${maxAge}, no-transform, must-revalidate`);
    res.setHeader('Expires', expires.toUTCString());
  } else {
    res.setHeader('Cache-Control', 'public, max-age=3600, no-transform');
  }
  if (req.get('if-none-match') === etag) {
    res.status(304).end();
    return;
  }
  res.status(200).type(type).send(body);
}

export function createPkiFilesRouter(deps: PkiFilesDeps): Router {
  const r = Router();
  r.get('/ca/:file', (req, res) => {
    const m = /^(.+)\.(crt|pem)$/.exec(String(req.params.file));
    const issuer = m && NAME.test(m[1]!) ? deps.issuers().get(m[1]!) : undefined;
    if (!m || !issuer) {
      res.status(404).type('text/plain').send('no such CA certificate\n');
      return;
    }
    const pem = m[2] === 'pem';
    sendCached(req, res, pem ? pemEncode('CERTIFICATE', issuer.certDer) : issuer.certDer, pem ? 'application/x-pem-file' : 'application/pkix-cert', issuer.notBefore, null, deps.now());
  });
  r.get('/crl/:file', async (req, res) => {
    const m = /^(.+)\.crl(\.pem)?$/.exec(String(req.params.file));
    const scope = m && /^[a-z0-9-]{2,48}$/.test(m[1]!) ? crlScope(m[1]!, deps) : null;
    if (!m || !scope) {
      req.log.info({ path: req.path }, 'no such CRL');
      res.status(404).type('text/plain').send('no such CRL\n');
      return;
    }
    const crl = await deps.latestCrl(scope.issuer, scope.kind, scope.shard);
    if (!crl) {
      res.status(404).type('text/plain').send('no CRL published yet\n');
      return;
    }
    const pem = m[2] === '.pem';
    // Expires is the CRL's nextUpdate; max-age is capped, so that caches pick up a republished CRL
    sendCached(req, res, pem ? pemEncode('X509 CRL', crl.der) : crl.der, pem ? 'application/x-pem-file' : 'application/pkix-crl', crl.thisUpdate, crl.nextUpdate, deps.now(), deps.httpMaxAgeMs);
  });
  return r;
}

/** Worker thread body of WorkerCryptoEngine: decodes/verifies CSRs, signs with in-memory keys, opens RSA key transport, derives PKCS#12 MAC keys. */
import crypto, { type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { CaError } from '../core/errors.js';
import { decodeCsr, verifyCsrSignature } from '../pki/csr.js';
import { pkcs12Kdf } from '../pki/pkcs12.js';
import { createKeyTransportDecryptor, type KeyTransportDecryptor } from './rsa-kt.js';

const keys = new Map<string, KeyObject>();
const port = parentPort!;

type Request = { id: number; op: string; der?: Uint8Array; keyId?: string; digest?: string | null; data?: Uint8Array; pkcs8?: Uint8Array; password?: string; salt?: Uint8Array; iterations?: number; expectedLength?: number };

/** Key-transport decryptors of the RA keys, made on first use. */
const decryptors = new Map<string, KeyTransportDecryptor>();
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; kind: string; message: string };

function handle(req: Request): Reply {
  try {
    let value: unknown;
    switch (req.op) {
      case 'verifyCsr': {
        value = verifyCsrSignature(decodeCsr(Buffer.from(req.der!.buffer, req.der!.byteOffset, req.der!.byteLength)));
        break;
      }
      case 'sign': {
        const key = keys.get(req.keyId!);
        if (!key) throw new Error(`no key ${req.keyId} in worker`);
        value = crypto.sign(req.digest ?? null, req.data!, key);
        break;
      }
      case 'ktDecrypt': {
        let d = decryptors.get(req.keyId!);
        if (!d) {
          const key = keys.get(req.keyId!);
          if (!key) throw new Error(`no key ${req.keyId} in worker`);
          decryptors.set(req.keyId!, (d = createKeyTransportDecryptor(key)));
        }
        value = d.decrypt(Buffer.from(req.data!.buffer, req.data!.byteOffset, req.data!.byteLength), req.expectedLength!);
        break;
      }
      case 'pkcs12MacKey':
        value = pkcs12Kdf(req.password!, Buffer.from(req.salt!), 3, req.iterations!, 32);
        break;
      case 'addKey':
        decryptors.delete(req.keyId!);
        keys.set(req.keyId!, crypto.createPrivateKey({ key: Buffer.from(req.pkcs8!), format: 'der', type: 'pkcs8' }));
        value = true;
        break;
      default:
        throw new Error(`unknown op ${req.op}`);
    }
    return { id: req.id, ok: true, value };
  } catch (e) {
    const kind = e instanceof CaError ? e.kind : 'internal';
    return { id: req.id, ok: false, kind, message: (e as Error).message };
  }
}

/**
 * Secret results (a content-encryption key, a PKCS#12 MAC key) move to the parent instead of being
 * copied, so no copy lingers in this thread's heap; only a buffer that owns its whole ArrayBuffer
 * can move (a pooled one would take its neighbours along).
 */
const SECRET_RESULTS = new Set(['ktDecrypt', 'pkcs12MacKey']);
function movable(req: Request, r: Reply): ArrayBuffer[] {
  if (!r.ok || !SECRET_RESULTS.has(req.op) || !(r.value instanceof Uint8Array)) return [];
  const v = r.value;
  return v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer ? [v.buffer] : [];
}

// a batch (the requests of one turn of the parent's event loop) is answered by one message
port.on('message', (m: Request | { batch: Request[] }) => {
  const reqs = 'batch' in m ? m.batch : [m];
  const replies = reqs.map(handle);
  const transfer = reqs.flatMap((req, i) => movable(req, replies[i]!));
  port.postMessage('batch' in m ? { batch: replies } : replies[0], transfer);
});

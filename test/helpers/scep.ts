/**
 * SCEP (RFC 8894) request building and reply reading for the integration tests, on top of the
 * golden-vector builder (scep-vectors.ts): RSA requesters with openssl-made self-signed
 * certificates and CSRs, pkcsPKIEnvelopes made by `openssl cms -encrypt` (so anyone can
 * regenerate a vector with openssl alone), the deliberately broken variants the uniform-failure
 * tests need, and a CertRep reader that checks the RA's signature and opens the reply envelope.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { encodeOctetString, encodePrintableString } from '../../src/pki/der.js';
import { OID_CIPHER, OID_CMS_ATTR, OID_SCEP } from '../../src/pki/oids.js';
import { decodeCertsOnly } from '../../src/pki/pkcs7.js';
import { certificateParts } from '../../src/pki/cert-parts.js';
import { checkMessageDigest, decodeEnvelopedData, decodePkiMessage, encodeEnvelopedData, type PkiMessage } from '../../src/pki/scep-cms.js';
import { rsaPkcs1Decrypt, scepAttribute, signedPkiMessage, type VectorDigest } from './scep-vectors.js';

/** openssl with binary stdin/stdout; throws with the command line and stderr when it fails. */
export function opensslBin(args: string[], input?: Buffer | string): Buffer {
  const r = spawnSync('openssl', args, { input, maxBuffer: 16 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}): ${r.stderr.toString()}`);
  return r.stdout;
}

/** An RSA key (PKCS#1 PEM file, readable by openssl and strongSwan pki) and an optional certificate. */
export interface RsaParty {
  key: crypto.KeyObject;
  keyFile: string;
  /** DER of the party's certificate (self-signed, or one fleetca issued). */
  certDer: Buffer;
  certFile: string;
}

/** A fresh RSA-2048 key pair (async: several run in parallel on libuv's pool). */
export function generateRsa(): Promise<crypto.KeyObject> {
  return new Promise((resolve, reject) =>
    crypto.generateKeyPair('rsa', { modulusLength: 2048 }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))),
  );
}

/** Writes `key` as PKCS#1 PEM to `dir/<name>.key` and makes an openssl self-signed certificate for `/CN=<cn>`. */
export function selfSignedParty(dir: string, name: string, key: crypto.KeyObject, cn: string): RsaParty {
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}-self.pem`);
  writeFileSync(keyFile, key.export({ type: 'pkcs1', format: 'pem' }));
  opensslBin(['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-days', '2', '-out', certFile]);
  const certDer = opensslBin(['x509', '-in', certFile, '-outform', 'DER']);
  return { key, keyFile, certDer, certFile };
}

/** A P-256 key and its openssl self-signed certificate for `/CN=<cn>` (a signer SCEP cannot encrypt a reply to). */
export function ecSelfSignedParty(dir: string, name: string, cn: string): { key: crypto.KeyObject; certDer: Buffer } {
  const keyFile = path.join(dir, `${name}.key`);
  opensslBin(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  const certDer = opensslBin(['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-days', '2', '-outform', 'DER']);
  return { key: crypto.createPrivateKey(readFileSync(keyFile)), certDer };
}

/** A DER PKCS#10 request by openssl for `CN=<cn>` signed with `keyFile`, with a challengePassword when given. */
export function opensslCsr(dir: string, name: string, keyFile: string, cn: string, challenge?: string): Buffer {
  const cfg = path.join(dir, `${name}.cnf`);
  writeFileSync(
    cfg,
    [
      '[req]',
      'prompt = no',
      'distinguished_name = dn',
      ...(challenge !== undefined ? ['attributes = attrs'] : []),
      '[dn]',
      `CN = ${cn}`,
      ...(challenge !== undefined ? ['[attrs]', `challengePassword = ${challenge}`] : []),
      '',
    ].join('\n'),
  );
  return opensslBin(['req', '-new', '-key', keyFile, '-config', cfg, '-outform', 'DER']);
}

/** `openssl cms -encrypt` of `content` to the certificate in `recipientCertFile`: a pkcsPKIEnvelope made by openssl alone. */
export function opensslEnvelope(content: Buffer, recipientCertFile: string, cipherFlag: '-aes128' | '-aes256' | '-des3'): Buffer {
  return opensslBin(['cms', '-encrypt', cipherFlag, '-recip', recipientCertFile, '-binary', '-outform', 'DER'], content);
}

/**
 * A pkcsPKIEnvelope to the RA whose encryptedKey is raw RSA (no padding applied by the library) of
 * EM = 0x00 || 0x01 || PS || 0x00 || CEK: the real content-encryption key behind block type 1
 * instead of 2, i.e. a corrupted PKCS#1 v1.5 encryption padding. A decoder that skipped the
 * padding check would recover the right key and decrypt the CSR.
 */
export function badPaddingEnvelope(content: Buffer, raCertDer: Buffer): Buffer {
  const raPub = new crypto.X509Certificate(raCertDer).publicKey;
  const k = Math.ceil(raPub.asymmetricKeyDetails!.modulusLength! / 8);
  const cek = crypto.randomBytes(16);
  const iv = crypto.randomBytes(16);
  const c = crypto.createCipheriv('aes-128-cbc', cek, iv);
  const encryptedContent = Buffer.concat([c.update(content), c.final()]);
  const ps = Buffer.alloc(k - 3 - cek.length);
  for (let i = 0; i < ps.length; i++) ps[i] = 1 + crypto.randomInt(255); // nonzero, like a real PS
  const em = Buffer.concat([Buffer.from([0x00, 0x01]), ps, Buffer.from([0x00]), cek]);
  const encryptedKey = crypto.publicEncrypt({ key: raPub, padding: crypto.constants.RSA_NO_PADDING }, em);
  const parts = certificateParts(raCertDer);
  return encodeEnvelopedData({
    recipientIssuerDer: parts.issuerDer,
    recipientSerial: parts.serial,
    encryptedKey,
    contentEncryptionOid: OID_CIPHER.aes128Cbc,
    iv,
    encryptedContent,
  });
}

/** A strongSwan-shaped transactionID (40 uppercase hex characters), random. */
export function randomTransactionId(): string {
  return crypto.randomBytes(20).toString('hex').toUpperCase();
}

/** Options of `scepRequest`. */
export interface ScepRequestOptions {
  /** The pkcsPKIEnvelope DER (the eContent). */
  envelopeDer: Buffer;
  signer: { certDer: Buffer; key: crypto.KeyObject };
  /** Default sha256. */
  digest?: VectorDigest;
  /** Default '19' (PKCSReq). */
  messageType?: string;
  /** Default: a random 40-character transactionID. */
  transactionId?: string;
  /** Default: 16 random octets. */
  senderNonce?: Buffer;
  /** A messageDigest attribute value to sign instead of the real digest of the envelope. */
  messageDigest?: Buffer;
}

/** A signed SCEP request and what went into it. */
export interface ScepRequest {
  der: Buffer;
  signature: Buffer;
  transactionId: string;
  senderNonce: Buffer;
}

/** A SCEP request (PKCSReq by default) around a ready-made envelope, signed by `signer`. */
export function scepRequest(o: ScepRequestOptions): ScepRequest {
  const transactionId = o.transactionId ?? randomTransactionId();
  const senderNonce = o.senderNonce ?? crypto.randomBytes(16);
  const attributes = [
    scepAttribute(OID_SCEP.messageType, encodePrintableString(o.messageType ?? '19')),
    scepAttribute(OID_SCEP.transactionID, encodePrintableString(transactionId)),
    scepAttribute(OID_SCEP.senderNonce, encodeOctetString(senderNonce)),
  ];
  if (o.messageDigest) attributes.push(scepAttribute(OID_CMS_ATTR.messageDigest, encodeOctetString(o.messageDigest)));
  const signed = signedPkiMessage({
    content: o.envelopeDer,
    signerCertDer: o.signer.certDer,
    signerKey: o.signer.key,
    digest: o.digest ?? 'sha256',
    attributes,
    ...(o.messageDigest ? { omitCmsAttributes: ['messageDigest' as const] } : {}),
  });
  return { der: signed.der, signature: signed.signature, transactionId, senderNonce };
}

/** A copy of `der` with one bit of the first occurrence of `part` flipped (a tampered signature). */
export function flipByteOf(der: Buffer, part: Buffer): Buffer {
  const at = der.indexOf(part);
  if (at < 0) throw new Error('part not found in message');
  const out = Buffer.from(der);
  out[at + Math.floor(part.length / 2)]! ^= 0x01;
  return out;
}

/** A decoded CertRep, its RA signature checked; the certificates when it was SUCCESS and a key was given. */
export interface CertRep {
  msg: PkiMessage;
  /** The RA's signature over the signed attributes verifies, and the messageDigest matches. */
  signedByRa: boolean;
  /** The certificates of the certs-only reply (SUCCESS, opened with the requester's key). */
  certificates: Buffer[];
}

/** Reads a CertRep: signer = the RA certificate, signature and digest checked, envelope opened with `requesterKey`. */
export function readCertRep(der: Buffer, raCertDer: Buffer, requesterKey?: crypto.KeyObject): CertRep {
  const msg = decodePkiMessage(der);
  const raPub = new crypto.X509Certificate(raCertDer).publicKey;
  const signedByRa =
    msg.signerCertDer.equals(raCertDer) &&
    msg.digestName !== undefined &&
    crypto.verify(msg.digestName, msg.signedAttrsDer, raPub, msg.signature) &&
    checkMessageDigest(msg, msg.digestName);
  let certificates: Buffer[] = [];
  if (msg.content && requesterKey) {
    const env = decodeEnvelopedData(msg.content);
    const cek = rsaPkcs1Decrypt(requesterKey, env.encryptedKey);
    const d = crypto.createDecipheriv(env.cipher.name, cek, env.iv);
    certificates = decodeCertsOnly(Buffer.concat([d.update(env.encryptedContent), d.final()]));
  }
  return { msg, signedByRa, certificates };
}

/** One HTTP exchange: status, Content-Type and body. */
export interface ScepReply {
  status: number;
  contentType: string | null;
  body: Buffer;
}

/**
 * GET, or POST of `body` without a Content-Type (as strongSwan pki sends PKIOperation), on a new
 * connection each time (no keep-alive race with the server's idle timeout between tests). A reply
 * that arrives before the whole body was written (413) is still returned.
 */
export function scepHttp(url: string, body?: Buffer): Promise<ScepReply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(url, { method: body === undefined ? 'GET' : 'POST', agent: false, headers: body === undefined ? {} : { 'Content-Length': String(body.length) } }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.once('error', reject);
      res.once('end', () => {
        const ct = res.headers['content-type'];
        resolve({ status: res.statusCode ?? 0, contentType: ct ?? null, body: Buffer.concat(chunks) });
      });
    });
    req.once('error', (e) => {
      if (!answered) reject(e);
    });
    req.end(body);
  });
}

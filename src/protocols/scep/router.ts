/**
 * SCEP (RFC 8894) on the plain HTTP listener: `/scep`, `/scep/<profile>` and the legacy
 * `/cgi-bin/pkiclient.exe`, `?operation=GetCACaps | GetCACert | GetNextCACert | PKIOperation`.
 *
 * Error channels (docs/ARCHITECTURE.md): only a message that does not even decode as a SCEP
 * pkiMessage gets HTTP 400. From the outer signature check through the envelope's decryption and
 * the inner request's parse, every failure gives one and the same signed CertRep FAILURE
 * (badMessageCheck), after the same steps: anyone can re-sign a captured request, so a different
 * answer for a padding error would be a decryption oracle. Later refusals (who may enroll, policy)
 * are CertRep FAILUREs with their failInfo.
 *
 * NOTE(client): strongSwan pki 5.9.8 POSTs PKIOperation without a Content-Type, and reads
 * GetCACaps with its bug #1607: AES is used only when SHA-384 is listed.
 */
import crypto from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { CaError, assertNever, toCaError } from '../../core/errors.js';
import { decodeCsr } from '../../pki/csr.js';
import { encodeCertsOnly } from '../../pki/pkcs7.js';
import { checkMessageDigest, decodePkiMessage, SCEP_MESSAGE_TYPE, type PkiMessage, type ScepDigest, type ScepFailInfo } from '../../pki/scep-cms.js';
import { decodeIssuerAndSerial, decodeIssuerAndSubject, encodeCrlsOnly } from '../../pki/scep-inner.js';
import { certificateParts, type CertificateParts } from '../../pki/cert-parts.js';
import { importSpki } from '../../pki/spki.js';
import type { ScepRa } from '../../ca/scep-ra.js';
import type { EnrollResult } from '../../enrollment/enroll.js';
import type { EnrollOperation, EnrollmentService, PresentedCredentials } from '../../enrollment/enroll.js';

export interface ScepDeps {
  ra: () => ScepRa;
  enrollment: EnrollmentService;
  /** Issuing CA first, root last, for a profile label (or the device CA). */
  caChain: (label: string | undefined) => Buffer[];
  /** Whether a profile label enables DES3 and SHA-1 (enrollment.legacyAlgorithms). */
  legacyAlgorithms: (label: string | undefined) => boolean;
  /** GetNextCACert: the scheduled next CA of the label's lineage, signed by the current CA (null: none scheduled). */
  nextCaCert?: (label: string | undefined) => Promise<Buffer | null>;
  /** The newest full CRL (DER) of an issuer, for GetCRL. */
  latestCrl: (issuerName: string) => Promise<Buffer | null>;
  now: () => Date;
}

/** RFC 8894 §3.5.2 capabilities. SHA-384 must be listed for strongSwan 5.9.8 to use AES (its bug #1607). */
export const SCEP_CAPABILITIES = ['POSTPKIOperation', 'SHA-256', 'SHA-384', 'SHA-512', 'AES', 'SCEPStandard', 'Renewal', 'GetNextCACert'];

const LABEL = /^[a-z][a-z0-9-]{0,62}$/;
const MAX_GET_MESSAGE = 64 * 1024;

/** The digest a reply uses: the request's (SHA-1 only where legacy algorithms are on), else SHA-256. */
function replyDigest(msg: PkiMessage, legacy: boolean): ScepDigest {
  if (msg.digestName === 'sha384' || msg.digestName === 'sha512') return msg.digestName;
  return legacy && msg.digestName === 'sha1' ? 'sha1' : 'sha256';
}

/** failInfo for refusals after the request was opened (exhaustive over the core's error kinds). */
function failInfoFor(e: CaError): ScepFailInfo | 'pending' | 'unavailable' {
  switch (e.kind) {
    case 'badRequest':
    case 'badCsr':
    case 'unauthorized':
    case 'forbidden':
    case 'policyRejected':
    case 'conflict':
    case 'internal':
      return 'badRequest';
    case 'notFound':
      return 'badCertId';
    case 'pending':
      return 'pending';
    case 'unavailable':
      return 'unavailable';
    default:
      return assertNever(e.kind);
  }
}


export function createScepRouter(deps: ScepDeps): Router {
  const r = Router();

  const sendMessage = (res: Response, der: Buffer) => {
    res.status(200).type('application/x-pki-message').send(der);
  };

  const certRep = async (res: Response, msg: PkiMessage, status: 'SUCCESS' | 'FAILURE' | 'PENDING', extra: { failInfo?: ScepFailInfo; envelopedData?: Buffer; legacy?: boolean } = {}) => {
    sendMessage(
      res,
      await deps.ra().signCertRep(
        {
          digest: replyDigest(msg, extra.legacy ?? false),
          status,
          transactionId: msg.transactionId,
          recipientNonce: msg.senderNonce,
          ...(extra.failInfo ? { failInfo: extra.failInfo } : {}),
          ...(extra.envelopedData ? { envelopedData: extra.envelopedData } : {}),
        },
        deps.now(),
      ),
    );
  };

  const pkiOperation = async (req: Request, res: Response, label: string | undefined, der: Buffer) => {
    let msg: PkiMessage;
    try {
      msg = decodePkiMessage(der);
    } catch (e) {
      req.log.warn({ scep: 'PKIOperation', status: 400, err: (e as Error).message }, 'scep request refused: not a pkiMessage');
      res.status(400).type('text/plain').send('not a SCEP pkiMessage\n');
      return;
    }
    const log = req.log.child({ scep: 'PKIOperation', transactionId: msg.transactionId, messageType: msg.messageType });

    // --- the uniform part: every step runs, whatever the earlier ones said ---
    const legacy = deps.legacyAlgorithms(label);
    const rep = (status: 'SUCCESS' | 'FAILURE' | 'PENDING', extra: { failInfo?: ScepFailInfo; envelopedData?: Buffer } = {}) =>
      certRep(res, msg, status, { ...extra, legacy });
    const digestAllowed = msg.digestName === 'sha256' || msg.digestName === 'sha384' || msg.digestName === 'sha512' || (legacy && msg.digestName === 'sha1');
    let signatureOk: boolean;
    let signerKey: crypto.KeyObject | undefined;
    let signerParts: CertificateParts | undefined;
    try {
      // the signer certificate is only a carrier of the requester's key (strongSwan's is self-signed):
      // its parts are parsed, its key imported from JWK where it can be (importSpki: an X509Certificate
      // decodes the key through OpenSSL's DER decoder, ~90 µs, five times the RSA verification)
      signerParts = certificateParts(msg.signerCertDer);
      signerKey = importSpki(signerParts.spkiDer);
      signatureOk = msg.digestName !== undefined && crypto.verify(msg.digestName, msg.signedAttrsDer, signerKey, msg.signature);
    } catch {
      signatureOk = false;
    }
    const digestOk = msg.digestName !== undefined && checkMessageDigest(msg, msg.digestName);
    let inner: Buffer | null;
    let cipher: Awaited<ReturnType<ScepRa['openEnvelope']>>['cipher'] | null = null;
    try {
      const opened = await deps.ra().openEnvelope(msg.content ?? Buffer.alloc(0), (c) => c.name.startsWith('aes-') || (legacy && c.name === 'des-ede3-cbc'));
      inner = opened.content;
      cipher = opened.cipher;
    } catch {
      inner = null;
    }
    const type = msg.messageType;
    const isCsrRequest = type === SCEP_MESSAGE_TYPE.PKCSReq || type === SCEP_MESSAGE_TYPE.RenewalReq;
    let innerOk = false;
    let deviceId = '';
    let challenge: string | undefined;
    let target: { issuerDer: Buffer; serialHex?: string; subjectDer?: Buffer } | null = null;
    if (inner) {
      try {
        if (isCsrRequest) {
          // the device id a challengePassword is checked for is the CSR's CN
          const csr = decodeCsr(inner);
          deviceId = csr.subject.find((a) => a.type === 'CN')?.value ?? '';
          challenge = csr.challengePassword;
        }
        else if (type === SCEP_MESSAGE_TYPE.CertPoll) target = decodeIssuerAndSubject(inner);
        else if (type === SCEP_MESSAGE_TYPE.GetCert || type === SCEP_MESSAGE_TYPE.GetCRL) target = decodeIssuerAndSerial(inner);
        innerOk = true;
      } catch {
        innerOk = false;
      }
    }
    if (!signatureOk || signerParts === undefined || !digestOk || !digestAllowed || inner === null || cipher === null || !innerOk) {
      log.warn({ status: 'FAILURE', failInfo: 'badMessageCheck' }, 'scep request refused: signature, digest, envelope or inner request invalid');
      await rep('FAILURE', { failInfo: 'badMessageCheck' });
      return;
    }

    // --- the request is authentic and readable ---
    // every reply with content is sealed to the signer's key by RSA key transport (sealFor): refuse
    // another key type before anything is issued or a one-time secret is spent
    if (signerKey?.asymmetricKeyType !== 'rsa') {
      log.warn({ status: 'FAILURE', failInfo: 'badAlg', signerKeyType: signerKey?.asymmetricKeyType }, 'scep request refused: the signer key is not RSA, so no reply can be encrypted to it');
      await rep('FAILURE', { failInfo: 'badAlg' });
      return;
    }
    // the signer as a transaction remembers it: its issuer and public key, not the certificate's
    // bytes (strongSwan makes a new self-signed certificate for the same key on every run), and not
    // the key alone (a same-key renewal signed by the issued certificate is another transaction)
    const signerSha = crypto.createHash('sha256').update(signerParts.issuerDer).update(signerParts.spkiDer).digest();
    const reply = async (result: EnrollResult) => {
      if (result.kind === 'pending') {
        log.info({ status: 'PENDING', request: result.requestId, actor: result.actor }, 'scep enrollment waits for approval');
        await rep('PENDING');
        return;
      }
      const cert = result.certificate;
      log.info({ status: 'SUCCESS', serial: cert.serial, device: cert.deviceId, profile: cert.profile, actor: result.actor, superseded: result.superseded }, 'scep certificate issued');
      await rep('SUCCESS', { envelopedData: deps.ra().sealFor(msg.signerCertDer, signerKey, encodeCertsOnly([cert.der]), cipher) });
    };
    const txs = deps.enrollment.scepTransactions;
    try {
      switch (type) {
        case SCEP_MESSAGE_TYPE.PKCSReq:
        case SCEP_MESSAGE_TYPE.RenewalReq: {
          const csrDer = inner;
          const csrHash = crypto.createHash('sha256').update(csrDer).digest();
          const tx = await txs.getScepTransaction(msg.transactionId, signerSha);
          if (tx && (tx.serial || tx.requestId)) {
            // RFC 8894 §3.2.1.1: a transactionID names one request; the same one again is a retransmission
            if (!tx.csrSha256.equals(csrHash)) {
              log.warn({ status: 'FAILURE', failInfo: 'badRequest' }, 'scep request refused: transactionID replayed with another CSR');
              await rep('FAILURE', { failInfo: 'badRequest' });
              return;
            }
            if (tx.serial) return await reply({ kind: 'issued', certificate: await deps.enrollment.issuedCertificate(tx.serial), superseded: [], actor: `transaction:${tx.transactionId}` });
            const result = await deps.enrollment.issueApproved(tx.requestId!, 'scep');
            if (result.kind === 'issued') await txs.recordScepTransaction({ ...tx, serial: result.certificate.serial }, deps.now());
            return await reply(result);
          }
          let operation: EnrollOperation;
          let credentials: PresentedCredentials;
          if (type === SCEP_MESSAGE_TYPE.RenewalReq) {
            // RFC 8894 §3.3.1.2: signed with the certificate being renewed
            operation = 'simplereenroll';
            credentials = { clientCertDer: msg.signerCertDer };
          } else {
            // PKCSReq: a one-time challenge (device id = the CSR's CN), else the signer's certificate
            // (a current fleetca certificate: renewal as Cisco IOS and macOS do it; or an IDevID)
            operation = 'simpleenroll';
            credentials = challenge !== undefined ? { basic: { user: deviceId, password: challenge } } : { clientCertDer: msg.signerCertDer };
          }
          const result = await deps.enrollment.enroll({ operation, label, csrDer, credentials, via: 'scep' });
          await txs.recordScepTransaction(
            {
              transactionId: msg.transactionId,
              signerSha256: signerSha,
              csrSha256: csrHash,
              requestId: result.kind === 'pending' ? result.requestId : null,
              serial: result.kind === 'issued' ? result.certificate.serial : null,
            },
            deps.now(),
          );
          return await reply(result);
        }
        case SCEP_MESSAGE_TYPE.CertPoll: {
          // RFC 8894 §3.3.3: the poll carries the transactionID of the request it asks about
          const tx = await txs.getScepTransaction(msg.transactionId, signerSha);
          if (!tx) {
            log.warn({ status: 'FAILURE', failInfo: 'badCertId' }, 'scep CertPoll refused: no such transaction for this signer');
            await rep('FAILURE', { failInfo: 'badCertId' });
            return;
          }
          if (tx.serial) return await reply({ kind: 'issued', certificate: await deps.enrollment.issuedCertificate(tx.serial), superseded: [], actor: `transaction:${tx.transactionId}` });
          if (!tx.requestId) {
            await rep('FAILURE', { failInfo: 'badCertId' });
            return;
          }
          const result = await deps.enrollment.issueApproved(tx.requestId, 'scep');
          if (result.kind === 'issued') await txs.recordScepTransaction({ ...tx, serial: result.certificate.serial }, deps.now());
          return await reply(result);
        }
        case SCEP_MESSAGE_TYPE.GetCert:
        case SCEP_MESSAGE_TYPE.GetCRL: {
          const c = await deps.enrollment.issuedCertificate(target!.serialHex!);
          if (!Buffer.from(certificateParts(c.der).issuerDer).equals(target!.issuerDer)) throw new CaError('notFound', 'issuer and serial name no certificate of fleetca');
          let content: Buffer;
          if (type === SCEP_MESSAGE_TYPE.GetCert) content = encodeCertsOnly([c.der]);
          else {
            const crl = await deps.latestCrl(c.issuerName);
            if (!crl) throw new CaError('notFound', `no CRL published for ${c.issuerName}`);
            content = encodeCrlsOnly([crl]);
          }
          log.info({ status: 'SUCCESS', serial: c.serial }, type === SCEP_MESSAGE_TYPE.GetCert ? 'scep GetCert' : 'scep GetCRL');
          await rep('SUCCESS', { envelopedData: deps.ra().sealFor(msg.signerCertDer, signerKey, content, cipher) });
          return;
        }
        default:
          log.warn({ status: 'FAILURE', failInfo: 'badRequest' }, 'scep request refused: unsupported messageType');
          await rep('FAILURE', { failInfo: 'badRequest' });
          return;
      }
    } catch (err) {
      const e = toCaError(err);
      const f = failInfoFor(e);
      if (f === 'pending') {
        await rep('PENDING');
        return;
      }
      const failInfo: ScepFailInfo = f === 'unavailable' ? 'badRequest' : f;
      log[e.kind === 'internal' ? 'error' : 'warn']({ status: 'FAILURE', failInfo, kind: e.kind, err: e.message }, 'scep request refused');
      await rep('FAILURE', { failInfo });
    }
  };

  const handle = async (req: Request, res: Response, label: string | undefined) => {
    const op = typeof req.query.operation === 'string' ? req.query.operation : '';
    try {
      if (label !== undefined && (!LABEL.test(label) || !deps.enrollment.deviceProfileExists(label))) {
        req.log.warn({ scep: op, status: 404 }, 'scep request refused: unknown profile');
        res.status(404).type('text/plain').send('unknown profile\n');
        return;
      }
      switch (op) {
        case 'GetCACaps':
          res
            .status(200)
            .type('text/plain')
            .send(Buffer.from([...SCEP_CAPABILITIES, ...(deps.legacyAlgorithms(label) ? ['DES3', 'SHA-1'] : [])].join('\n') + '\n'));
          return;
        case 'GetCACert':
          // RFC 8894 §4.2.1.2: the RA certificate, then the issuing CA and the root, as certs-only
          res.status(200).type('application/x-x509-ca-ra-cert').send(encodeCertsOnly([deps.ra().certDer, ...deps.caChain(label)]));
          return;
        case 'GetNextCACert': {
          // RFC 8894 §4.7: a scheduled rollover's new CA, signed by the current CA; else 404
          const next = deps.nextCaCert ? await deps.nextCaCert(label) : null;
          if (!next) {
            req.log.info({ scep: op, status: 404 }, 'scep GetNextCACert: no CA rollover pending');
            res.status(404).type('text/plain').send('no CA rollover pending\n');
            return;
          }
          res.status(200).type('application/x-x509-next-ca-cert').send(next);
          return;
        }
        case 'PKIOperation': {
          let der: Buffer;
          if (req.method === 'POST') {
            der = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          } else {
            // GET: a base64 message, URL-encoded; a '+' that was not escaped arrives as ' '
            const m = typeof req.query.message === 'string' ? req.query.message : '';
            if (m.length > MAX_GET_MESSAGE) {
              res.status(414).type('text/plain').send('message too long\n');
              return;
            }
            der = Buffer.from(m.replace(/ /g, '+'), 'base64');
          }
          await pkiOperation(req, res, label, der);
          return;
        }
        default:
          req.log.warn({ scep: op, status: 400 }, 'scep request refused: unknown operation');
          res.status(400).type('text/plain').send('unknown or missing operation\n');
      }
    } catch (err) {
      const e = toCaError(err);
      req.log.error({ scep: op, kind: e.kind, err: e.message }, 'scep request failed');
      if (!res.headersSent) res.status(e.kind === 'unavailable' ? 503 : 500).type('text/plain').send(e.kind === 'unavailable' ? 'unavailable\n' : 'internal error\n');
    }
  };

  for (const path of ['/scep', '/cgi-bin/pkiclient.exe']) {
    r.get(path, (req, res) => handle(req, res, undefined));
    r.post(path, (req, res) => handle(req, res, undefined));
  }
  r.get('/scep/:label', (req, res) => handle(req, res, req.params.label as string));
  r.post('/scep/:label', (req, res) => handle(req, res, req.params.label as string));
  return r;
}

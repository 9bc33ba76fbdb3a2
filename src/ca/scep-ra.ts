/**
 * The SCEP RA's key operations (RFC 8894), in the core because only the core uses private keys:
 * opening a pkcsPKIEnvelope addressed to the RA certificate, sealing a reply to the requester,
 * and signing CertRep messages.
 *
 * Opening never tells why it failed. Key transport is RSA PKCS#1 v1.5, decrypted with implicit
 * rejection (signing/rsa-kt.ts): a bad padding yields a pseudo-random key, so it fails at the
 * content decryption or the inner parse, at the same place and with the same error as a wrong
 * recipient, a bad cipher padding or a truncated envelope. The adapter answers all of them with
 * one and the same signed CertRep FAILURE.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { certificateParts } from '../pki/cert-parts.js';
import { subjectKeyIdFromSpki } from '../pki/cert-template.js';
import {
  decodeEnvelopedData,
  encodeCertRep,
  encodeEnvelopedData,
  type CertRepInput,
  type ContentCipher,
} from '../pki/scep-cms.js';
import { InlineCryptoEngine, type CryptoEngine, type RaKeyOps } from '../signing/crypto-pool.js';

/** The one error every envelope failure becomes. */
export class EnvelopeError extends Error {
  constructor() {
    super('the pkcsPKIEnvelope could not be opened');
  }
}

/** What an opened envelope held, and how it was encrypted (the reply uses the same cipher). */
export interface OpenedEnvelope {
  content: Buffer;
  cipher: ContentCipher;
}

export class ScepRa {
  /** The RA key's operations, registered with the engine on first use (see constructor). */
  private ops: Promise<RaKeyOps> | null = null;
  private readonly issuerDer: Buffer;
  private readonly serial: Buffer;
  private readonly ski: Buffer;

  constructor(
    /** The RA certificate (DER). */
    readonly certDer: Buffer,
    readonly key: KeyObject,
    /**
     * The RA this one replaced at renewal, while its certificate is valid: a client that fetched
     * GetCACert before the renewal still encrypts to it, and its envelopes are opened with its key.
     * Replies are always signed by the current RA.
     */
    readonly previous: ScepRa | null = null,
    /**
     * Where the RSA operations run: the server passes its worker pool, so the key-transport
     * decryption and the CertRep signature (~1.5 ms of RSA-2048 per request) leave the event loop.
     */
    private readonly engine: Pick<CryptoEngine, 'addRaKey'> = new InlineCryptoEngine(),
  ) {
    const parts = certificateParts(certDer);
    this.issuerDer = Buffer.from(parts.issuerDer);
    this.serial = Buffer.from(parts.serial);
    // fleetca wrote the RA certificate's SKI this way, for recipients named by subjectKeyIdentifier
    this.ski = subjectKeyIdFromSpki(Buffer.from(parts.spkiDer));
  }

  /**
   * Opens a pkcsPKIEnvelope. Every failure (malformed, addressed to another certificate, bad key
   * transport padding, bad content padding) throws the same EnvelopeError after the same steps.
   * `allowed` filters the content ciphers a profile accepts (DES3 only where enabled).
   */
  async openEnvelope(envelopeDer: Buffer, allowed: (c: ContentCipher) => boolean): Promise<OpenedEnvelope> {
    let parts: ReturnType<typeof decodeEnvelopedData>;
    try {
      parts = decodeEnvelopedData(envelopeDer);
    } catch {
      throw new EnvelopeError();
    }
    // which RA certificate the envelope names is public (RecipientInfo): choosing by it reveals nothing
    if (!this.isRecipient(parts) && this.previous?.isRecipient(parts)) return this.previous.open(parts, allowed);
    return this.open(parts, allowed);
  }

  /** This RA without the one it replaced (a renewal keeps one predecessor, never a chain of them). */
  withoutPrevious(): ScepRa {
    return this.previous ? new ScepRa(this.certDer, this.key, null, this.engine) : this;
  }

  /** Whether the envelope's RecipientInfo names this RA certificate. */
  private isRecipient(parts: ReturnType<typeof decodeEnvelopedData>): boolean {
    return parts.recipientIssuerDer !== undefined && parts.recipientSerial !== undefined
      ? parts.recipientIssuerDer.equals(this.issuerDer) && parts.recipientSerial === this.serial.toString('hex')
      : parts.recipientSki !== undefined && parts.recipientSki.equals(this.ski);
  }

  private keyOps(): Promise<RaKeyOps> {
    // one id per RA key: a renewed RA registers its own
    this.ops ??= this.engine.addRaKey(`scep-ra:${crypto.createHash('sha256').update(this.certDer).digest('hex')}`, this.key);
    return this.ops;
  }

  private async open(parts: ReturnType<typeof decodeEnvelopedData>, allowed: (c: ContentCipher) => boolean): Promise<OpenedEnvelope> {
    const forUs = this.isRecipient(parts);
    // the decryption runs whatever the checks said, so a wrong recipient costs the same time
    const key = await (await this.keyOps()).decryptKeyTransport(parts.encryptedKey, parts.cipher.keyLength);
    let content: Buffer | null;
    try {
      const d = crypto.createDecipheriv(parts.cipher.name, key, parts.iv);
      content = Buffer.concat([d.update(parts.encryptedContent), d.final()]);
    } catch {
      content = null;
    } finally {
      key.fill(0);
    }
    if (!forUs || content === null || !allowed(parts.cipher)) throw new EnvelopeError();
    return { content, cipher: parts.cipher };
  }

  /**
   * Encrypts `content` to the requester's certificate with a fresh key (RFC 8894 §3.3.2);
   * `recipientKey` is that certificate's public key (the caller has parsed it already).
   */
  sealFor(recipientCertDer: Buffer, recipientKey: KeyObject, content: Buffer, cipher: ContentCipher): Buffer {
    const parts = certificateParts(recipientCertDer);
    const cek = crypto.randomBytes(cipher.keyLength);
    const iv = crypto.randomBytes(cipher.ivLength);
    const c = crypto.createCipheriv(cipher.name, cek, iv);
    const encryptedContent = Buffer.concat([c.update(content), c.final()]);
    // public-key encryption with PKCS#1 v1.5 is what SCEP clients decrypt (RFC 8894 §3.2.2)
    const encryptedKey = crypto.publicEncrypt({ key: recipientKey, padding: crypto.constants.RSA_PKCS1_PADDING }, cek);
    cek.fill(0);
    return encodeEnvelopedData({
      recipientIssuerDer: Buffer.from(parts.issuerDer),
      recipientSerial: Buffer.from(parts.serial),
      encryptedKey,
      contentEncryptionOid: cipher.oid,
      iv,
      encryptedContent,
    });
  }

  /** Signs a CertRep with the RA key. */
  async signCertRep(p: Omit<CertRepInput, 'signerCertDer' | 'senderNonce' | 'signingTime'>, now: Date, extraCerts: Buffer[] = []): Promise<Buffer> {
    const rep = encodeCertRep({ ...p, signerCertDer: this.certDer, extraCerts, senderNonce: crypto.randomBytes(16), signingTime: now });
    return rep.assemble(await (await this.keyOps()).sign(rep.digest, rep.signedAttrsDer));
  }
}

/**
 * Golden-vector builder for SCEP requests (RFC 8894 §3.2), shaped like what strongSwan pki 5.9.8
 * sends: a pkcsPKIEnvelope (EnvelopedData, RSA PKCS#1 v1.5 key transport, AES/DES3-CBC) inside a
 * SignedData with one v1 SignerInfo, a self-signed signer certificate, and the signed attributes
 * contentType, messageDigest, signingTime, messageType, transactionID and senderNonce.
 *
 * `openssl cms -sign` cannot add custom signed attributes, so the SignedData is built here with
 * the DER writer and node's crypto; the tests check every shape this produces with
 * `openssl cms -verify` and `openssl cms -cmsout -print`, so the decoder is not only checked
 * against its own writer. Every knob that a rejection test needs (attributes left out, two
 * SignerInfos, SKI signer, rsaEncryption as signatureAlgorithm) is an option.
 */
import * as crypto from 'node:crypto';
import { certificateParts } from '../../src/pki/cert-parts.js';
import {
  contextTag,
  decodeOid,
  encodeExplicit,
  encodeInteger,
  encodeNull,
  encodeOctetString,
  encodeOid,
  encodePrintableString,
  encodeSequence,
  encodeSetOf,
  encodeTlv,
  encodeUtcTime,
  readChildren,
  readTlv,
  readWhole,
  valueOf,
} from '../../src/pki/der.js';
import { OID_CIPHER, OID_CMS, OID_CMS_ATTR, OID_EXT, OID_HASH, OID_KEY, OID_SCEP, OID_SIG } from '../../src/pki/oids.js';
import { encodeEnvelopedData } from '../../src/pki/scep-cms.js';

export type VectorCipher = 'aes128' | 'aes192' | 'aes256' | 'des3';
export type VectorDigest = 'sha1' | 'sha256' | 'sha384' | 'sha512';

const CIPHER: Record<VectorCipher, { oid: string; node: string; key: number; iv: number }> = {
  aes128: { oid: OID_CIPHER.aes128Cbc, node: 'aes-128-cbc', key: 16, iv: 16 },
  aes192: { oid: OID_CIPHER.aes192Cbc, node: 'aes-192-cbc', key: 24, iv: 16 },
  aes256: { oid: OID_CIPHER.aes256Cbc, node: 'aes-256-cbc', key: 32, iv: 16 },
  des3: { oid: OID_CIPHER.desEde3Cbc, node: 'des-ede3-cbc', key: 24, iv: 8 },
};

const DIGEST: Record<VectorDigest, { hash: string; withRsa: string }> = {
  sha1: { hash: OID_HASH.sha1, withRsa: OID_SIG.sha1WithRsa },
  sha256: { hash: OID_HASH.sha256, withRsa: OID_SIG.sha256WithRsa },
  sha384: { hash: OID_HASH.sha384, withRsa: OID_SIG.sha384WithRsa },
  sha512: { hash: OID_HASH.sha512, withRsa: OID_SIG.sha512WithRsa },
};

/** node's cipher name for a vector cipher. */
export function nodeCipherName(c: VectorCipher): string {
  return CIPHER[c].node;
}

/** One Attribute { attrType, attrValues SET { value } }. */
export function scepAttribute(oid: string, valueDer: Buffer): Buffer {
  return encodeSequence(encodeOid(oid), encodeSetOf([valueDer]));
}

/** The subjectKeyIdentifier extension value of a certificate (RFC 5280 §4.2.1.2). */
export function subjectKeyIdentifier(certDer: Buffer): Buffer {
  const { tbsDer } = certificateParts(certDer);
  const exts = readChildren(tbsDer, readWhole(tbsDer)).find((t) => t.tag === contextTag(3, true));
  if (exts === undefined) throw new Error('certificate has no extensions');
  for (const ext of readChildren(tbsDer, readChildren(tbsDer, exts)[0]!)) {
    const f = readChildren(tbsDer, ext);
    if (decodeOid(tbsDer, f[0]!) !== OID_EXT.subjectKeyIdentifier) continue;
    const value = f[f.length - 1]!;
    return Buffer.from(valueOf(tbsDer, readTlv(tbsDer, value.valueStart, value.end)));
  }
  throw new Error('certificate has no subjectKeyIdentifier');
}

/** The result of `envelope`. */
export interface Envelope {
  der: Buffer;
  cek: Buffer;
  iv: Buffer;
}

/**
 * A pkcsPKIEnvelope for `recipientCertDer`: a random content key and IV, CBC with PKCS#7 padding
 * (node's default), the key encrypted with RSAES-PKCS1-v1_5 (publicEncrypt, allowed in Node 20),
 * written with the src encoder `encodeEnvelopedData`.
 */
export function envelope(content: Buffer, recipientCertDer: Buffer, cipher: VectorCipher): Envelope {
  const c = CIPHER[cipher];
  const cek = crypto.randomBytes(c.key);
  const iv = crypto.randomBytes(c.iv);
  const enc = crypto.createCipheriv(c.node, cek, iv);
  const encryptedContent = Buffer.concat([enc.update(content), enc.final()]);
  const recipientKey = new crypto.X509Certificate(recipientCertDer).publicKey;
  const encryptedKey = crypto.publicEncrypt({ key: recipientKey, padding: crypto.constants.RSA_PKCS1_PADDING }, cek);
  const parts = certificateParts(recipientCertDer);
  const der = encodeEnvelopedData({
    recipientIssuerDer: parts.issuerDer,
    recipientSerial: parts.serial,
    encryptedKey,
    contentEncryptionOid: c.oid,
    iv,
    encryptedContent,
  });
  return { der, cek, iv };
}

/** Options of `signedPkiMessage`. */
export interface SignedMessageOptions {
  /** The eContent; omitted when undefined (the messageDigest is then over the empty string). */
  content?: Buffer;
  signerCertDer: Buffer;
  signerKey: crypto.KeyObject;
  digest: VectorDigest;
  /** The SCEP attributes (full Attribute DERs); the CMS ones are added unless `omitCmsAttributes`. */
  attributes: Buffer[];
  signingTime?: Date;
  /** 'withHash' (sha256WithRSAEncryption…, what strongSwan 5.9.8 writes) or 'rsaEncryption' (openssl). */
  signatureAlgorithm?: 'withHash' | 'rsaEncryption';
  /** issuerAndSerialNumber (v1, default) or subjectKeyIdentifier (v3). */
  sid?: 'issuerAndSerial' | 'ski';
  /** Certificates to carry; default the signer's. */
  certificates?: Buffer[];
  /** How many copies of the SignerInfo to put in signerInfos (default 1). */
  signerInfoCopies?: number;
  omitCmsAttributes?: ('contentType' | 'messageDigest' | 'signingTime')[];
}

/** The result of `signedPkiMessage`. */
export interface SignedMessage {
  der: Buffer;
  signedAttrsDer: Buffer;
  signature: Buffer;
}

/** A SignedData ContentInfo signed over DER signed attributes (RFC 5652 §5.4). */
export function signedPkiMessage(o: SignedMessageOptions): SignedMessage {
  const d = DIGEST[o.digest];
  const omit = new Set(o.omitCmsAttributes ?? []);
  const attrs = [...o.attributes];
  if (!omit.has('contentType')) attrs.push(scepAttribute(OID_CMS_ATTR.contentType, encodeOid(OID_CMS.data)));
  if (!omit.has('messageDigest')) {
    const md = crypto.createHash(o.digest).update(o.content ?? Buffer.alloc(0)).digest();
    attrs.push(scepAttribute(OID_CMS_ATTR.messageDigest, encodeOctetString(md)));
  }
  if (!omit.has('signingTime')) attrs.push(scepAttribute(OID_CMS_ATTR.signingTime, encodeUtcTime(o.signingTime ?? new Date())));
  const signedAttrsDer = encodeSetOf(attrs);
  const signature = crypto.sign(o.digest, signedAttrsDer, o.signerKey);

  const parts = certificateParts(o.signerCertDer);
  const ski = o.sid === 'ski';
  const sid = ski
    ? encodeTlv(contextTag(0, false), subjectKeyIdentifier(o.signerCertDer))
    : encodeSequence(parts.issuerDer, encodeTlv(0x02, parts.serial));
  const implicitAttrs = Buffer.from(signedAttrsDer);
  implicitAttrs[0] = contextTag(0, true);
  const digestAlg = encodeSequence(encodeOid(d.hash));
  const sigAlg = encodeSequence(encodeOid(o.signatureAlgorithm === 'rsaEncryption' ? OID_KEY.rsaEncryption : d.withRsa), encodeNull());
  const signerInfo = encodeSequence(encodeInteger(ski ? 3 : 1), sid, digestAlg, implicitAttrs, sigAlg, encodeOctetString(signature));
  const encap =
    o.content === undefined
      ? encodeSequence(encodeOid(OID_CMS.data))
      : encodeSequence(encodeOid(OID_CMS.data), encodeExplicit(0, encodeOctetString(o.content)));
  const signerInfos = Array.from({ length: o.signerInfoCopies ?? 1 }, () => signerInfo);
  const signedData = encodeSequence(
    encodeInteger(ski ? 3 : 1),
    encodeSetOf([digestAlg]),
    encap,
    encodeTlv(contextTag(0, true), ...(o.certificates ?? [o.signerCertDer])),
    encodeTlv(0x31, ...signerInfos),
  );
  return { der: encodeSequence(encodeOid(OID_CMS.signedData), encodeExplicit(0, signedData)), signedAttrsDer, signature };
}

/** Options of `makePkcsReq`. */
export interface PkcsReqOptions {
  /** The PKCS#10 request DER (or any inner content). */
  csrDer: Buffer;
  requesterCertDer: Buffer;
  requesterKey: crypto.KeyObject;
  /** The RA certificate the envelope is encrypted to. */
  raCertDer: Buffer;
  cipher: VectorCipher;
  digest: VectorDigest;
  /** Default '19' (PKCSReq). */
  messageType?: string;
  /** Default: uppercase hex SHA-1 of the requester's SubjectPublicKeyInfo, as strongSwan. */
  transactionId?: string;
  /** Default: 16 random octets. */
  senderNonce?: Buffer;
  signingTime?: Date;
  omit?: ('messageType' | 'transactionID' | 'senderNonce')[];
  signatureAlgorithm?: SignedMessageOptions['signatureAlgorithm'];
  sid?: SignedMessageOptions['sid'];
  signerInfoCopies?: number;
}

/** A PKCSReq and what went into it. */
export interface PkcsReq extends SignedMessage {
  envelope: Envelope;
  transactionId: string;
  senderNonce: Buffer;
}

/** strongSwan's transactionID: the SHA-1 of the SubjectPublicKeyInfo in uppercase hex. */
export function strongswanTransactionId(certDer: Buffer): string {
  return crypto.createHash('sha1').update(certificateParts(certDer).spkiDer).digest('hex').toUpperCase();
}

/** A full SCEP PKCSReq (or another request type via `messageType`). */
export function makePkcsReq(o: PkcsReqOptions): PkcsReq {
  const env = envelope(o.csrDer, o.raCertDer, o.cipher);
  const transactionId = o.transactionId ?? strongswanTransactionId(o.requesterCertDer);
  const senderNonce = o.senderNonce ?? crypto.randomBytes(16);
  const omit = new Set(o.omit ?? []);
  const attributes: Buffer[] = [];
  if (!omit.has('messageType')) attributes.push(scepAttribute(OID_SCEP.messageType, encodePrintableString(o.messageType ?? '19')));
  if (!omit.has('transactionID')) attributes.push(scepAttribute(OID_SCEP.transactionID, encodePrintableString(transactionId)));
  if (!omit.has('senderNonce')) attributes.push(scepAttribute(OID_SCEP.senderNonce, encodeOctetString(senderNonce)));
  const signed = signedPkiMessage({
    content: env.der,
    signerCertDer: o.requesterCertDer,
    signerKey: o.requesterKey,
    digest: o.digest,
    attributes,
    ...(o.signingTime ? { signingTime: o.signingTime } : {}),
    ...(o.signatureAlgorithm ? { signatureAlgorithm: o.signatureAlgorithm } : {}),
    ...(o.sid ? { sid: o.sid } : {}),
    ...(o.signerInfoCopies ? { signerInfoCopies: o.signerInfoCopies } : {}),
  });
  return { ...signed, envelope: env, transactionId, senderNonce };
}

/**
 * RSAES-PKCS1-v1_5 decryption done by hand (RFC 8017 §7.2.2). Node 20 refuses
 * `privateDecrypt` with RSA_PKCS1_PADDING since CVE-2023-46809 (Marvin), so tests decrypt with
 * RSA_NO_PADDING and strip EM = 0x00 || 0x02 || PS (≥ 8 non-zero octets) || 0x00 || M here.
 * Test-only: this is not constant-time.
 */
export function rsaPkcs1Decrypt(key: crypto.KeyObject, encrypted: Buffer): Buffer {
  const em = crypto.privateDecrypt({ key, padding: crypto.constants.RSA_NO_PADDING }, encrypted);
  if (em[0] !== 0x00 || em[1] !== 0x02) throw new Error('not PKCS#1 v1.5 type 2 padding');
  const sep = em.indexOf(0x00, 2);
  if (sep < 10) throw new Error('PKCS#1 v1.5 padding string too short');
  return em.subarray(sep + 1);
}

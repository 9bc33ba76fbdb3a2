/**
 * Public surface of the pure PKI layer: DER/ASN.1 building and parsing, no I/O, no clock, no
 * global randomness (time and random bytes are parameters).
 */
export * from './algorithms.js';
export * from './cert-parts.js';
export * from './cert-template.js';
export * from './crl.js';
export * from './csr.js';
export * from './der.js';
export * from './extensions.js';
export * from './names.js';
export * from './oids.js';
export * from './pem.js';
export * from './serial.js';
export * from './spki.js';
export * from './weak-keys.js';
export * from './pkcs7.js';
export * from './csrattrs.js';
export * from './crl-decode.js';
export * from './scep-cms.js';
export * from './ocsp.js';

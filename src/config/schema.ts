/**
 * The schema of `ca-config/`: CA settings (`ca.yaml`) and one certificate profile per file
 * (`profiles/<name>.yaml`). Every field is described here; `fleetca config check` and start-up
 * validate against it once, and the result is frozen. Unknown keys are errors (strict objects),
 * so a typo never silently falls back to a default.
 */
import { z } from 'zod';
import { parseDuration } from '../core/duration.js';

/** A duration string such as `90d`, `12h`, `5m`, `1d12h`; parsed to milliseconds. */
/**
 * Expiry and rotation events (issue 9). Which of them a profile announces is its `notifications.events`:
 * certificate.expiring (once per certificate per threshold), certificate.expired (once), device.stale
 * (once per current certificate), certificate.renewed (a new certificate replaced a live one).
 */
export const EXPIRY_EVENTS = ['certificate.expiring', 'certificate.expired', 'certificate.renewed', 'device.stale'] as const;
export type ExpiryEvent = (typeof EXPIRY_EVENTS)[number];

/** Event types a webhook endpoint may subscribe to (each is the audit action it comes from). */
export const WEBHOOK_EVENTS = [
  'certificate.issued',
  'certificate.superseded',
  'certificate.revoked',
  'certificate.held',
  'certificate.released',
  'device.quarantined',
  'device.released',
  'device.retired',
  'secret.created',
  ...EXPIRY_EVENTS,
] as const;

const duration = (what: string) =>
  z
    .string()
    .describe(`${what} (a duration: 90d, 12h, 5m, 1y = 365 d)`)
    .transform((s, ctx) => {
      try {
        return parseDuration(s);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return z.NEVER;
      }
    });

/** A regular expression source, compiled and anchored when used. */
const regex = (what: string) =>
  z
    .string()
    .describe(`${what} (a JavaScript regular expression, matched against the whole value)`)
    .refine(
      (s) => {
        try {
          new RegExp(s);
          return true;
        } catch {
          return false;
        }
      },
      { message: 'not a valid regular expression' },
    );

export const KEY_TYPES = ['P-256', 'P-384', 'P-521', 'ed25519', 'rsa'] as const;
export type KeyTypeName = (typeof KEY_TYPES)[number];

export const KEY_USAGES = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
] as const;

/** EKU names fleetca knows; anything else must be a dotted OID. */
export const EKU_NAMES = ['clientAuth', 'serverAuth', 'OCSPSigning', 'codeSigning', 'emailProtection', 'timeStamping'] as const;
const ekuValue = z
  .string()
  .refine((s) => (EKU_NAMES as readonly string[]).includes(s) || /^\d+(\.\d+)+$/.test(s), {
    message: `an EKU name (${EKU_NAMES.join(', ')}) or a dotted OID`,
  });

/** Subject attributes a CSR may carry besides CN, with the pattern each value must match. */
export const SUBJECT_ATTRIBUTES = ['O', 'OU', 'C', 'L', 'ST', 'serialNumber', 'emailAddress'] as const;

const sanRule = (what: string) =>
  z
    .strictObject({
      pattern: regex(`every ${what} must match this`),
      max: z.number().int().min(1).max(100).default(10).describe(`at most this many ${what} entries`),
    })
    .describe(`${what} SANs a CSR may request; absent = refused`);

export const ProfileSchema = z
  .strictObject({
    description: z.string().describe('what this profile is for, shown in listings'),
    kind: z
      .enum(['device', 'system'])
      .describe('device: enrolled by devices and admins; system: fleetca\'s own service certificates (OCSP, TLS, SCEP RA)'),
    issuer: z
      .string()
      .describe('name of the issuing CA in ca.yaml `issuers` (system profiles that serve every issuing CA say `per-issuer`)'),
    criticality: z
      .enum(['low', 'normal', 'high'])
      .default('normal')
      .describe('how critical the device class is; high-criticality classes get the shortest validity and are listed first'),
    validity: duration('certificate lifetime from issuance'),
    backdate: duration('notBefore is set this far before issuance, for device clocks that drift').prefault('5m'),
    keys: z
      .strictObject({
        types: z.array(z.enum(KEY_TYPES)).min(1).describe('allowed subject key types'),
        rsaMinBits: z.number().int().min(2048).default(2048).describe('smallest RSA modulus accepted, in bits'),
        rsaMaxBits: z.number().int().max(16384).default(8192).describe('largest RSA modulus accepted, in bits'),
      })
      .describe('which public keys a CSR may carry'),
    keyUsage: z
      .array(z.enum(KEY_USAGES))
      .min(1)
      .describe(
        'keyUsage bits. keyEncipherment is kept only for RSA keys and keyAgreement only for EC keys (RFC 5480 §3, RFC 8813)',
      ),
    extendedKeyUsage: z.array(ekuValue).default([]).describe('extendedKeyUsage purposes; clientAuth for EAP-TLS devices'),
    subject: z
      .strictObject({
        commonName: z
          .union([z.literal('deviceId'), regex('the CN')])
          .default('deviceId')
          .describe('`deviceId`: the CN must equal the device id; otherwise a pattern the CN must match'),
        attributes: z
          .partialRecord(z.enum(SUBJECT_ATTRIBUTES), regex('the attribute value'))
          .default({})
          .describe('other subject attributes a CSR may carry, each with its pattern; any attribute not listed is refused'),
      })
      .prefault({})
      .describe('which subject a CSR may ask for'),
    san: z
      .strictObject({
        dns: sanRule('DNS name').optional(),
        ip: sanRule('IP address').optional(),
        email: sanRule('email address').optional(),
        uri: sanRule('URI').optional(),
        hardwareModuleName: z
          .strictObject({
            hwType: z
              .string()
              .regex(/^[0-2](\.\d+)+$/, 'a dotted OID')
              .describe("the device type's OID (RFC 4108 §5 hwType): an arc under your organisation's IANA Private Enterprise Number"),
          })
          .optional()
          .describe(
            'IEEE 802.1AR IDevIDs: add a hardwareModuleName otherName SAN (RFC 4108 §5: hwType, and hwSerialNum = the device record\'s serial number) when the device has a serial number; absent = none',
          ),
        includeMacs: z
          .boolean()
          .default(true)
          .describe(
            "add the device record's MAC addresses as URI SANs `urn:dev:mac:<12 hex digits>` (RFC 9039); MACs come from the device record, never from the CSR",
          ),
      })
      .prefault({})
      .describe('which subjectAltName types a CSR may request'),
    renewal: z
      .strictObject({
        window: z
          .union([
            z.string().regex(/^\d{1,2}%$/).describe('a share of the validity, e.g. 33%'),
            duration('time before notAfter'),
          ])
          .default('33%')
          .describe('the renewal window before notAfter: drives notifications and stale detection'),
        allowEarly: z.boolean().default(true).describe('whether re-enrollment before the window is accepted'),
        reuseKey: z.boolean().default(true).describe('whether re-enrollment may keep the same public key'),
        supersededGrace: duration('how long a superseded certificate stays valid after its replacement').prefault('7d'),
      })
      .prefault({})
      .describe('rotation policy'),
    notifications: z
      .strictObject({
        events: z
          .array(z.enum(EXPIRY_EVENTS))
          .default([...EXPIRY_EVENTS])
          .describe(`which expiry and rotation events certificates of this profile raise (default all): ${EXPIRY_EVENTS.join(', ')}; [] = none`),
        expiringThresholds: z
          .array(duration('time before notAfter'))
          .min(1)
          .max(10)
          .prefault(['30d', '7d', '1d'])
          .describe(
            'certificate.expiring fires once per certificate as each of these is crossed (default 30d, 7d, 1d); a threshold at least as long as the certificate\'s lifetime is skipped',
          ),
      })
      .prefault({})
      .describe('expiry tracking: which events fire for this profile, and when'),
    approval: z
      .strictObject({ required: z.boolean().default(false).describe('whether each issuance waits for an admin') })
      .prefault({})
      .describe('issuance approval'),
    enrollment: z
      .strictObject({
        secrets: z
          .boolean()
          .default(true)
          .describe('whether one-time enrollment secrets (EST HTTP Basic, SCEP challengePassword) may enroll for this profile'),
        staticChallengeSha256: z
          .string()
          .regex(/^[0-9a-f]{64}$/, 'the lowercase hex SHA-256 of the challenge')
          .optional()
          .describe(
            'LABS ONLY: a static challenge shared by every device of this profile, given as the hex SHA-256 of the challenge (`printf %s CHALLENGE | sha256sum`); any device knowing it enrolls and is created if new. Absent (default) = off',
          ),
        challengeWebhook: z
          .strictObject({
            url: z.url({ protocol: /^https?$/ }).describe('POSTed {device, profile, challenge, csr (base64 DER), via} as JSON; a 2xx reply with {"allow": true} allows'),
            timeoutMs: z.number().int().min(100).max(30_000).default(5000).describe('how long to wait; no answer in time = refused'),
          })
          .optional()
          .describe('a dynamic challenge validator (the way MDM systems issue SCEP challenges); consulted when no one-time secret matches'),
        legacyAlgorithms: z
          .boolean()
          .default(false)
          .describe('SCEP: also accept DES3 content encryption and SHA-1 digests, and list them in GetCACaps at /scep/<profile> (old clients only)'),
        channelBinding: z
          .boolean()
          .default(false)
          .describe(
            'EST: the CSR must carry the TLS channel binding in challengePassword (RFC 7030 §3.5: base64 of tls-unique on TLS 1.2; on TLS 1.3, base64 of tls-exporter, RFC 9266)',
          ),
        idevid: z
          .strictObject({
            trust: z
              .array(z.string().min(1))
              .min(1)
              .describe(
                "trust anchors for manufacturer IDevIDs: an issuer name from ca.yaml (fleetca's own `manufacturing-ca`) or a PEM file of an external manufacturer CA, relative to ca-config/",
              ),
            deviceId: z
              .enum(['CN', 'serialNumber'])
              .default('CN')
              .describe('which subject attribute of the IDevID is the device id'),
            crls: z
              .array(z.string().min(1))
              .default([])
              .describe('CRL files (PEM or DER, relative to ca-config/) of external anchors; an IDevID they list is refused'),
          })
          .optional()
          .describe('EST: devices presenting a manufacturer IDevID as TLS client certificate may enroll without a secret; absent = refused'),
      })
      .prefault({})
      .describe('who may enroll for this profile, besides re-enrollment with a current certificate'),
    ocspNoCheck: z.boolean().default(false).describe('add id-pkix-ocsp-nocheck (OCSP responder certificates only)'),
    lints: z
      .strictObject({ disable: z.array(z.string()).default([]).describe('lint names this profile opts out of') })
      .prefault({})
      .describe('pre-issuance lints'),
    nacRole: z.string().optional().describe('NAC identity group / VLAN / role this device class maps to'),
  })
  .describe('a certificate profile');

export type Profile = z.infer<typeof ProfileSchema> & { name: string };

const subjectSchema = z
  .strictObject({
    CN: z.string().min(1).describe('common name'),
    O: z.string().optional().describe('organization'),
    OU: z.string().optional().describe('organizational unit'),
    C: z.string().length(2).optional().describe('two-letter country code'),
  })
  .describe('the CA certificate subject');

export const CA_KEY_TYPES = ['P-256', 'P-384', 'rsa2048', 'rsa3072', 'rsa4096'] as const;
export type CaKeyType = (typeof CA_KEY_TYPES)[number];

export const IssuerSchema = z
  .strictObject({
    role: z
      .enum(['root', 'device', 'manufacturing'])
      .describe('root: self-signed, can go offline; device: issues operational certificates the NAC trusts; manufacturing: issues IDevIDs the NAC must never trust'),
    subject: subjectSchema,
    keyType: z.enum(CA_KEY_TYPES).default('P-256').describe('CA key type; ECDSA P-256 by default'),
    validity: duration('CA certificate lifetime'),
    pathLen: z.number().int().min(0).optional().describe('basicConstraints pathLenConstraint (issuing CAs: 0)'),
  })
  .describe('a CA in the hierarchy');

export const CaSettingsSchema = z
  .strictObject({
    publicUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'base URL of the CDP, OCSP and caIssuers URLs baked into certificates; `fleetca init` uses it unless --public-url is given (default http://localhost:8080). After init, the value stored in the data dir is the one used',
      ),
    issuers: z
      .record(z.string().regex(/^[a-z][a-z0-9-]{1,30}$/), IssuerSchema)
      .describe('the CA hierarchy, by name; the names appear in CRL, OCSP and caIssuers URLs'),
    crl: z
      .strictObject({
        nextUpdate: duration(
          'full CRL validity (nextUpdate - thisUpdate); also how long an expired revoked certificate stays listed after its notAfter',
        ).prefault('7d'),
        republish: duration('a new base CRL (the full CRL delta CRLs refer to) is signed this often; must be below nextUpdate').prefault('1d'),
        deltaNextUpdate: duration('delta CRL validity; a fresh delta is signed at half of it, and on every status change').prefault('1h'),
        deltas: z.boolean().default(true).describe('publish delta CRLs (RFC 5280 §5.2.4) and name them in the full CRL (Freshest CRL)'),
        debounce: duration('status changes are gathered this long before the CRLs are republished (a change reaches the CRLs within about this plus the signing time)').prefault('1s'),
        httpMaxAge: duration('HTTP Cache-Control max-age of a served CRL or OCSP response, never beyond its nextUpdate: both change on a status change, so caches must not keep them until nextUpdate').prefault('5m'),
        shards: z
          .number()
          .int()
          .min(1)
          .max(256)
          .default(1)
          .describe(
            'partitioned CRLs: 1 = off (the CDP names the full CRL); N > 1 = each new certificate gets a shard 1..N from its serial, named in its CDP, and each shard CRL carries a critical Issuing Distribution Point',
          ),
      })
      .prefault({})
      .refine((c) => c.republish < c.nextUpdate, { message: 'crl.republish must be shorter than crl.nextUpdate' })
      .describe('CRL settings'),
    webhooks: z
      .strictObject({
        endpoints: z
          .array(
            z.strictObject({
              name: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/).describe('a short name (deliveries are kept per endpoint name)'),
              url: z.url({ protocol: /^https?$/ }).describe('where the JSON events are POSTed'),
              secretFile: z
                .string()
                .min(1)
                .describe('file (relative to ca-config/) holding the HMAC-SHA256 secret the X-Fleetca-Signature header is made with; never the secret itself in YAML'),
              events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).describe(`the event types this endpoint receives: ${WEBHOOK_EVENTS.join(', ')}`),
            }),
          )
          .default([])
          .refine((a) => new Set(a.map((e) => e.name)).size === a.length, { message: 'webhook endpoint names must be unique' })
          .describe('webhook endpoints'),
        maxAttempts: z.number().int().min(1).max(100).default(12).describe('deliveries that failed this many times are given up (state dead)'),
        retryBase: duration('first retry delay; doubled after every failure').prefault('10s'),
        retryMax: duration('longest retry delay').prefault('1h'),
        timeout: duration('how long one POST may take').prefault('10s'),
      })
      .prefault({})
      .describe('webhooks: every event from a durable outbox, HMAC-signed, retried with backoff, at least once'),
    ocsp: z
      .strictObject({
        validity: duration('OCSP response validity (nextUpdate - thisUpdate); pre-signed responses are refreshed at half of it').prefault('4h'),
        cacheEntries: z.number().int().min(0).max(10_000_000).default(200_000).describe('responses kept in memory per instance (about 0.75 KB each with the request index)'),
        liveSignatures: z.number().int().min(1).max(1024).default(32).describe('concurrent live signatures (requests with a nonce or several certificates)'),
        liveQueue: z.number().int().min(0).max(100_000).default(2048).describe('live signatures waiting beyond liveSignatures before the answer is tryLater'),
        presignBatch: z.number().int().min(1).max(100_000).default(500).describe('pre-signed responses written per transaction'),
        responderRenewBefore: duration('a delegated responder certificate is replaced this long before it expires').prefault('30d'),
      })
      .prefault({})
      .describe('OCSP responder settings'),
    server: z
      .strictObject({
        tlsNames: z
          .array(z.string())
          .default([])
          .describe('extra DNS names or IP addresses for the TLS server certificate (localhost and 127.0.0.1 are always in it)'),
        bodyLimitBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(256 * 1024).describe('largest request body accepted, in bytes'),
        serviceCertRenewBefore: duration(
          'the TLS server and SCEP RA certificates are replaced this long before they expire, without a restart (the new RA certificate is published through GetCACert)',
        ).prefault('30d'),
        cryptoWorkers: z
          .number()
          .int()
          .min(1)
          .max(256)
          .nullable()
          .default(null)
          .describe('worker threads of the server for signatures, verifications and key decryption; null: one per core'),
      })
      .prefault({})
      .describe('HTTP server settings'),
    expiry: z
      .strictObject({
        interval: duration(
          'how often a server refreshes the expiry gauges and (one server at a time, under a PostgreSQL advisory lock) raises certificate.expiring, certificate.expired and device.stale',
        ).prefault('10m'),
        catchUp: duration(
          'how far back a pass looks for certificates that expired or entered their renewal window while no tracker ran; older ones are never announced (the gauges and `fleetca expiry report` still count them)',
        ).prefault('7d'),
      })
      .prefault({})
      .describe('expiry tracking (README "Expiry, rotation and renewal")'),
    recovery: z
      .strictObject({
        pendingIntentGrace: duration(
          'an issuance intent still pending this long after it was recorded belongs to a process that died between signing and commit; start-up marks it failed',
        ).prefault('60s'),
      })
      .prefault({})
      .describe('crash recovery of the issuance pipeline'),
    audit: z
      .strictObject({
        anchorEvery: duration(
          'the audit chain head is signed with the audit key (an anchor) when it moved and the last anchor is this old. WARNING: rows after the last anchor can be rewritten or cut off by whoever can write the database without verify noticing; shorter means a smaller window and more anchor rows',
        ).prefault('1h'),
        sealEvery: duration('how often a running server seals new audit rows into the hash chain (a row is chained within about this)').prefault('2s'),
      })
      .prefault({})
      .describe('tamper-evident audit log (README "Audit log")'),
    enrollment: z
      .strictObject({
        secretTtl: duration('default lifetime of a one-time enrollment secret (`secret create --ttl`)').prefault('72h'),
        maxSecretTtl: duration('longest lifetime a secret may be given').prefault('90d'),
        failureLimit: z
          .number()
          .int()
          .min(1)
          .default(10)
          .describe('failed secret attempts per device id within failureWindow before further attempts are refused (401) until the window passes'),
        failureWindow: duration('the window of failureLimit').prefault('5m'),
        pendingRetryAfter: z
          .number()
          .int()
          .min(1)
          .max(86400)
          .default(60)
          .describe('Retry-After seconds sent with EST 202 while a request waits for approval'),
      })
      .prefault({})
      .describe('enrollment settings shared by EST and SCEP'),
    systemProfiles: z
      .strictObject({
        ocspResponder: z.string().default('ocsp-responder'),
        tlsServer: z.string().default('tls-server'),
        scepRa: z.string().default('scep-ra'),
      })
      .prefault({})
      .describe('which profiles fleetca uses for its own service certificates'),
  })
  .describe('CA settings (ca-config/ca.yaml)');

export type CaSettings = z.infer<typeof CaSettingsSchema>;
export type IssuerSettings = z.infer<typeof IssuerSchema>;

/** The whole validated configuration. */
export interface FleetcaConfig {
  readonly dir: string;
  readonly settings: CaSettings;
  readonly profiles: ReadonlyMap<string, Profile>;
}

-- 0001_init: the issuance, device, revocation and audit schema.
--
-- Forward-only: never edit this file once released; add 0002_… instead. The runner
-- (src/store/migrate.ts) executes it in one transaction together with its schema_migrations row.
-- All instants are timestamptz. Serials are canonical lowercase hex (see core/ids.ts normalizeSerial).
-- Serials and device ids use the C collation: byte order is right for hex and ids, and it keeps
-- every btree comparison a memcmp on servers whose default collation is a locale's.

-- CA certificates this instance signs with (and the root above them).
CREATE TABLE issuers (
  id          smallserial PRIMARY KEY,
  name        text        NOT NULL UNIQUE,
  role        text        NOT NULL CHECK (role IN ('root', 'device', 'manufacturing')),
  cert_der    bytea       NOT NULL,
  ski         bytea       NOT NULL,
  not_before  timestamptz NOT NULL,
  not_after   timestamptz NOT NULL,
  active      boolean     NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
  id               text        COLLATE "C" PRIMARY KEY,
  macs             text[]      NOT NULL DEFAULT '{}',
  serial_number    text,
  model            text,
  firmware         text,
  profile          text,
  state            text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'quarantined', 'retired')),
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  last_enrolled_at timestamptz
) WITH (fillfactor = 90);  -- every enrollment updates last_enrolled_at: room on the page keeps it a HOT update
CREATE INDEX devices_profile_idx ON devices (profile);
CREATE INDEX devices_model_idx ON devices (model);

-- Step 2 of the issuance pipeline: a serial is reserved by inserting it here, under the primary key,
-- before anything is signed. A serial is never reused, even when its issuance failed.
CREATE TABLE serials (
  serial      text        COLLATE "C" PRIMARY KEY CHECK (serial ~ '^[0-9a-f]+$'),
  issuer_id   smallint    NOT NULL,  -- no FK: written with the intent on the hot path; certificates.issuer_id has one
  reserved_at timestamptz NOT NULL
);

-- Step 3: what is about to be signed. A pending intent older than a few seconds means a crash
-- between signing and storing; start-up reconciliation completes it or marks it failed.
CREATE TABLE issuance_intents (
  -- the serial is the key: one intent per reserved serial, and one index fewer to maintain on the
  -- two writes every issuance makes to this table
  serial       text        COLLATE "C" PRIMARY KEY REFERENCES serials (serial),
  issuer_id    smallint    NOT NULL,  -- no FK: written with the intent on the hot path; certificates.issuer_id has one
  device_id    text        COLLATE "C",
  profile      text        NOT NULL,
  tbs_der      bytea       NOT NULL,
  request      jsonb       NOT NULL DEFAULT '{}',
  state        text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'issued', 'failed')),
  failure      text,
  created_at   timestamptz NOT NULL,
  completed_at timestamptz
);
CREATE INDEX issuance_intents_pending_idx ON issuance_intents (created_at) WHERE state = 'pending';

-- Step 5: every certificate ever handed out (and only those).
CREATE TABLE certificates (
  serial             text        COLLATE "C" PRIMARY KEY REFERENCES serials (serial),
  -- no FK to issuers: every certificate insert would take FOR KEY SHARE on the same few issuer rows,
  -- turning concurrent commits into MultiXact traffic on one row; issuers are never deleted
  issuer_id          smallint    NOT NULL,
  device_id          text        COLLATE "C" REFERENCES devices (id),
  profile            text        NOT NULL,
  subject            text        NOT NULL,
  sans               jsonb       NOT NULL DEFAULT '[]',
  spki_sha256        bytea       NOT NULL,
  fingerprint_sha256 bytea       NOT NULL UNIQUE,
  not_before         timestamptz NOT NULL,
  not_after          timestamptz NOT NULL,
  der                bytea       NOT NULL,
  pop_method         text        NOT NULL CHECK (pop_method IN ('csr', 'factory', 'server', 'ca')),
  status             text        NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked', 'hold')),
  revoked_at         timestamptz,
  revocation_reason  text CHECK (revocation_reason IN (
                       'unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded',
                       'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn', 'aACompromise')),
  invalidity_date    timestamptz,
  created_at         timestamptz NOT NULL,
  -- a valid certificate carries no revocation data; a revoked or held one always has a time and reason
  CHECK ((status = 'valid') = (revoked_at IS NULL AND revocation_reason IS NULL)),
  CHECK ((status = 'hold') = (revocation_reason IS NOT DISTINCT FROM 'certificateHold'))
);
CREATE INDEX certificates_device_id_idx ON certificates (device_id);
CREATE INDEX certificates_spki_sha256_idx ON certificates (spki_sha256);
CREATE INDEX certificates_not_after_idx ON certificates (not_after);
CREATE INDEX certificates_profile_idx ON certificates (profile);
-- CRL building reads only revoked and held rows: a partial index that valid inserts never touch
CREATE INDEX certificates_revoked_idx ON certificates (issuer_id, revoked_at) WHERE status <> 'valid';

-- One row per status change (revoke, hold; later: release of a hold with reason removeFromCRL).
-- CRL and OCSP publishing read this history; ids are increasing, so "changes since id N" is cheap.
CREATE TABLE revocations (
  id              bigserial   PRIMARY KEY,
  serial          text        COLLATE "C" NOT NULL REFERENCES certificates (serial),
  reason          text        NOT NULL,
  revoked_at      timestamptz NOT NULL,
  invalidity_date timestamptz,
  actor           text        NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revocations_serial_idx ON revocations (serial);

-- Audit trail, apart from the operational log: written before and after every key operation.
CREATE TABLE audit_log (
  id      bigserial   PRIMARY KEY,
  at      timestamptz NOT NULL,
  actor   text        NOT NULL,
  action  text        NOT NULL,
  target  text,
  details jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_target_idx ON audit_log (target, id);

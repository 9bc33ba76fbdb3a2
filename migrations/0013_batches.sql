-- 0013_batches: factory batches (issue 7, bulk manufacturing provisioning).
--
-- A batch is one manifest run under an id. It is idempotent and resumable: the certificates it
-- issued are found through their issuance intents, which carry the batch id in `request`
-- (written in the same durable step that reserves the serial), so a process killed at any point
-- leaves nothing the next run cannot account for. batch_devices is the per-device state the
-- runner commits after each chunk; it is a summary, the intents are the truth.

CREATE TABLE batches (
  id                 text        COLLATE "C" PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  -- the manifest's SHA-256: a rerun under the same id must bring the same manifest
  manifest_sha256    bytea       NOT NULL CHECK (length(manifest_sha256) = 32),
  manifest_name      text        NOT NULL,
  -- profile, keygen, format, secrets, secret TTL, KDF iterations, output dir: fixed at creation
  options            jsonb       NOT NULL,
  state              text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'complete')),
  rows_total         integer     NOT NULL DEFAULT 0,
  rejected           integer     NOT NULL DEFAULT 0,
  runs               integer     NOT NULL DEFAULT 1,
  created_at         timestamptz NOT NULL,
  created_by         text        NOT NULL,
  updated_at         timestamptz NOT NULL,
  completed_at       timestamptz,
  revoked_at         timestamptz,
  revoked_by         text,
  revocation_reason  text,
  CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX batches_created_idx ON batches (created_at);

-- The devices of a batch (rows that passed validation). `serial` is the certificate the batch gave
-- the device; `replaced` the ones revoked (superseded) because their server-generated key was lost
-- before it reached the output folder; `secret_id` the one-time enrollment secret it made.
CREATE TABLE batch_devices (
  batch_id    text        COLLATE "C" NOT NULL REFERENCES batches (id),
  device_id   text        COLLATE "C" NOT NULL REFERENCES devices (id),
  line        integer     NOT NULL,
  profile     text        NOT NULL,
  state       text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'rejected')),
  serial      text        COLLATE "C",
  replaced    text[]      NOT NULL DEFAULT '{}',
  secret_id   bigint      REFERENCES enrollment_secrets (id),
  reason      text,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (batch_id, device_id)
);
CREATE INDEX batch_devices_line_idx ON batch_devices (batch_id, line);

-- Rows refused (by validation or by the CA at issuance), by input line: rejects.csv and `batch show`.
CREATE TABLE batch_rejects (
  batch_id   text        COLLATE "C" NOT NULL REFERENCES batches (id),
  line       integer     NOT NULL,
  device_id  text,
  reason     text        NOT NULL,
  PRIMARY KEY (batch_id, line)
);

-- Finding a batch's certificates and pending intents (resume, revoke). Partial: only batch intents
-- are in it, so ordinary issuance pays one predicate check per insert and nothing else.
CREATE INDEX issuance_intents_batch_idx ON issuance_intents ((request ->> 'batch'), device_id) WHERE request ? 'batch';

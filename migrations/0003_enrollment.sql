-- 0003_enrollment: one-time enrollment secrets, the approval queue, and supersession on re-enrollment.

-- One-time enrollment secrets (EST HTTP Basic, SCEP challengePassword, factory batches).
-- Only an HMAC-SHA-256 of the secret is stored, under a server-side key: the secrets are random
-- (>= 128 bits), so a slow password hash would add nothing but cost.
-- A secret is claimed while its enrollment runs and consumed once the certificate is committed; a
-- failed enrollment releases it. A claim never expires: a process that died mid-enrollment may have
-- committed a certificate, so the secret is spent (the admin creates a new one).
CREATE TABLE enrollment_secrets (
  id          bigserial   PRIMARY KEY,
  device_id   text        COLLATE "C" NOT NULL,
  profile     text        NOT NULL,
  mac         bytea       NOT NULL CHECK (length(mac) = 32),
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  created_by  text        NOT NULL,
  claimed_at  timestamptz,
  consumed_at timestamptz,
  serial      text        COLLATE "C",
  CHECK (expires_at > created_at),
  CHECK (consumed_at IS NULL OR serial IS NOT NULL)
);
-- lookups are by device id among the secrets still usable
CREATE INDEX enrollment_secrets_device_idx ON enrollment_secrets (device_id) WHERE consumed_at IS NULL;

-- Requests waiting for an administrator (profiles with approval.required). A device polls with the
-- same public key; once approved, its next request for that key is issued and the row is closed.
CREATE TABLE enrollment_requests (
  id           bigserial   PRIMARY KEY,
  device_id    text        COLLATE "C" NOT NULL,
  profile      text        NOT NULL,
  spki_sha256  bytea       NOT NULL,
  subject      text        NOT NULL,
  csr_der      bytea       NOT NULL,
  via          text        NOT NULL,
  actor        text        NOT NULL,
  state        text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected', 'issued')),
  created_at   timestamptz NOT NULL,
  decided_at   timestamptz,
  decided_by   text,
  reason       text,
  serial       text        COLLATE "C",
  CHECK ((state = 'pending') = (decided_at IS NULL))
);
-- at most one open request per device, profile and key: a device that polls finds its own row
CREATE UNIQUE INDEX enrollment_requests_open_idx ON enrollment_requests (device_id, profile, spki_sha256)
  WHERE state IN ('pending', 'approved');
CREATE INDEX enrollment_requests_state_idx ON enrollment_requests (state, id);

-- Re-enrollment supersedes the certificate it renews: the old one stays valid for the profile's
-- grace period (supersede_revoke_at), then is revoked with reason superseded.
ALTER TABLE certificates
  ADD COLUMN superseded_by       text COLLATE "C",
  ADD COLUMN supersede_revoke_at timestamptz;
CREATE INDEX certificates_supersede_due_idx ON certificates (supersede_revoke_at)
  WHERE supersede_revoke_at IS NOT NULL AND status <> 'revoked';

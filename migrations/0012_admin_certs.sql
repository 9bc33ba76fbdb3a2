-- 0012_admin_certs: client certificates for the admin API (issue 6), from an admin CA of their
-- own. The admin CA is a self-signed root apart from the device hierarchy and deliberately NOT a
-- row of `issuers`: it has no CRL, no OCSP, and appears in no EST cacerts or NAC export, so
-- nothing that trusts the device root can be made to accept an admin certificate. Its private
-- key is an encrypted file in the data dir of the machine that created it (like issuer keys);
-- its certificate is here, so that every server instance can verify admin certificates.

-- At most one row (the key `id` can only be true).
CREATE TABLE admin_ca (
  id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
  cert_der    bytea       NOT NULL,
  not_before  timestamptz NOT NULL,
  not_after   timestamptz NOT NULL,
  created_at  timestamptz NOT NULL,
  created_by  text        NOT NULL
);

-- One row per admin certificate. The row is inserted (serial reserved) before the certificate is
-- signed; cert_der and fingerprint are filled in after. A row without a fingerprint can never
-- authenticate anyone. Revocation is this table's revoked_at: the server looks the presented
-- certificate up by fingerprint on every request.
CREATE TABLE admin_certificates (
  serial       text        PRIMARY KEY,
  fingerprint  bytea       UNIQUE CHECK (octet_length(fingerprint) = 32),
  cert_der     bytea,
  name         text        NOT NULL,
  role         text        NOT NULL CHECK (role IN ('admin', 'operator', 'factory', 'auditor', 'nac')),
  not_before   timestamptz NOT NULL,
  not_after    timestamptz NOT NULL,
  created_at   timestamptz NOT NULL,
  created_by   text        NOT NULL,
  revoked_at   timestamptz,
  revoked_by   text,
  CHECK ((fingerprint IS NULL) = (cert_der IS NULL)),
  CHECK ((revoked_at IS NULL) = (revoked_by IS NULL)),
  CHECK (not_after > not_before)
);

CREATE INDEX admin_certificates_name_idx ON admin_certificates (name, created_at);

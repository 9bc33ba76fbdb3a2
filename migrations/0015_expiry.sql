-- 0015_expiry: expiry tracking and server-side renewal (issue 9).
--
-- The expiry tracker announces certificate.expiring (once per certificate per threshold),
-- certificate.expired (once) and device.stale (once per current certificate) as audit records,
-- which the webhook trigger of 0008 turns into events. What was announced is recorded here, in the
-- same statement as its audit record: the primary key makes "once" hold across restarts and
-- across servers racing (ON CONFLICT DO NOTHING; only the inserting statement writes the audit).

CREATE TABLE expiry_notices (
  serial        text        COLLATE "C" NOT NULL REFERENCES certificates (serial),
  kind          text        NOT NULL CHECK (kind IN ('expiring', 'expired', 'stale')),
  -- expiring: the threshold crossed, in ms before notAfter; 0 for expired and stale
  threshold_ms  bigint      NOT NULL DEFAULT 0,
  at            timestamptz NOT NULL,
  -- false: crossed together with a tighter threshold, which was announced instead
  announced     boolean     NOT NULL,
  PRIMARY KEY (serial, kind, threshold_ms)
);

-- The certificates the tracker and the gauges look at: device certificates that are neither
-- revoked nor replaced, by notAfter (then serial: the tracker's keyset). Issuance inserts into it;
-- supersession and revocation take rows out.
CREATE INDEX certificates_live_expiry_idx ON certificates (not_after, serial) INCLUDE (profile)
  WHERE device_id IS NOT NULL AND status <> 'revoked' AND superseded_by IS NULL;

-- `fleetca renew`: a certificate re-issued by the server for the key of the certificate it
-- replaces (possession was proven when that one was issued).
ALTER TABLE certificates DROP CONSTRAINT certificates_pop_method_check;
-- NOT VALID: every existing row satisfies the narrower check it replaces, so no table scan
ALTER TABLE certificates ADD CONSTRAINT certificates_pop_method_check
  CHECK (pop_method IN ('csr', 'factory', 'server', 'ca', 'renewal')) NOT VALID;

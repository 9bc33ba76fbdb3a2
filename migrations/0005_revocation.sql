-- 0005_revocation: hold/release, CRL entries ready to stream, CRL shards and bases, pre-signed OCSP
-- responses, and a notification on every status change.

-- The CRL entry (RFC 5280 §5.1.2.6 revokedCertificates element) of a revoked or held certificate,
-- encoded once when its status changes: every field of it (serial, revocationDate, reasonCode,
-- invalidityDate) is fixed at that moment, so building a CRL is concatenating stored bytes.
ALTER TABLE certificates ADD COLUMN crl_entry bytea;
-- The CRL shard named in the certificate's CDP, fixed at issuance; NULL: the CDP names the full CRL.
ALTER TABLE certificates ADD COLUMN crl_shard smallint CHECK (crl_shard >= 0);
-- A valid certificate has no entry. Rows revoked before this migration have none yet: the CRL
-- publisher encodes those before it builds (ca/crl.ts).
ALTER TABLE certificates ADD CONSTRAINT certificates_crl_entry_status CHECK (status <> 'valid' OR crl_entry IS NULL);
CREATE INDEX certificates_missing_crl_entry_idx ON certificates (serial) WHERE status <> 'valid' AND crl_entry IS NULL;

-- CRL building reads an issuer's revoked and held certificates in serial order. The index covers
-- what a build reads, so that (once vacuumed) it is an index-only scan: revoked rows are a small part
-- of the table and their entries are ~45 bytes.
CREATE INDEX certificates_listed_idx ON certificates (issuer_id, serial) INCLUDE (not_after, crl_shard, crl_entry) WHERE status <> 'valid';

-- The status history gains releases (reason removeFromCRL) and the issuer, for delta CRLs.
ALTER TABLE revocations ADD COLUMN issuer_id smallint REFERENCES issuers (id);
UPDATE revocations r SET issuer_id = c.issuer_id FROM certificates c WHERE c.serial = r.serial;
ALTER TABLE revocations ALTER COLUMN issuer_id SET NOT NULL;
CREATE INDEX revocations_issuer_revoked_idx ON revocations (issuer_id, revoked_at);

-- A base CRL is a full CRL that delta CRLs are issued against (RFC 5280 §5.2.4); published on the
-- schedule. Full CRLs republished on a change are complete too but are not bases.
ALTER TABLE crls ADD COLUMN base boolean NOT NULL DEFAULT false;
ALTER TABLE crls ADD COLUMN base_number bigint;
ALTER TABLE crls ADD COLUMN entries integer NOT NULL DEFAULT 0;
CREATE INDEX crls_base_idx ON crls (issuer_id, number DESC) WHERE base;
-- a CRL is signed, high-entropy DER: compressing it on insert (measured: 1.5 s for a 49 MB CRL)
-- gains nothing
ALTER TABLE crls ALTER COLUMN der SET STORAGE EXTERNAL;

-- Pre-signed OCSP responses (RFC 5019 §2.1: responses may be produced ahead of requests), one per
-- certificate, for the SHA-1 CertID every client can send. A status change deletes the row in the
-- same transaction (trigger below), so a stored response is never older than the status it states.
CREATE TABLE ocsp_responses (
  serial      text        COLLATE "C" PRIMARY KEY REFERENCES certificates (serial) ON DELETE CASCADE,
  this_update timestamptz NOT NULL,
  next_update timestamptz NOT NULL,
  der         bytea       NOT NULL,
  CHECK (next_update > this_update)
);
CREATE INDEX ocsp_responses_next_update_idx ON ocsp_responses (next_update);

-- Every status change, whichever process makes it (server, CLI, another instance), drops the
-- pre-signed OCSP response and tells every listening instance after COMMIT (NOTIFY is delivered
-- at commit, never for a rolled-back change). Payload: "<issuer id>:<serial>".
CREATE FUNCTION fleetca_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM ocsp_responses WHERE serial = NEW.serial;
  PERFORM pg_notify('fleetca_status', NEW.issuer_id::text || ':' || NEW.serial);
  RETURN NULL;
END;
$$;
CREATE TRIGGER certificates_status_changed
  AFTER UPDATE OF status, revocation_reason ON certificates
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.revocation_reason IS DISTINCT FROM NEW.revocation_reason)
  EXECUTE FUNCTION fleetca_status_changed();

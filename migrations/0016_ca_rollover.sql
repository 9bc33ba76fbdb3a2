-- 0016_ca_rollover: more than one CA certificate per configured issuing CA (issue 9).
--   lineage       the ca.yaml issuer name the CA serves (profiles name it): device-ca for
--                 device-ca, device-ca-2, … after rollovers
--   activates_at  from when it issues for its lineage: the issuing CA of a lineage is the one
--                 with the latest activates_at that has come (a rollover --at schedules it)
ALTER TABLE issuers ADD COLUMN lineage text;
ALTER TABLE issuers ADD COLUMN activates_at timestamptz;
UPDATE issuers SET lineage = name, activates_at = not_before;
ALTER TABLE issuers ALTER COLUMN lineage SET NOT NULL;
ALTER TABLE issuers ALTER COLUMN activates_at SET NOT NULL;
-- two CAs of one lineage never take over at the same instant
CREATE UNIQUE INDEX issuers_lineage_activation_idx ON issuers (lineage, activates_at);

-- Root rollover (RFC 4210 §4.4): the new root's key certified by the old root (old-with-new) and
-- the old root's key certified by the new one (new-with-old), so that a device holding either
-- root can validate chains under the other. EST cacerts carries them (RFC 7030 §4.1.3).
CREATE TABLE ca_link_certificates (
  id          smallserial PRIMARY KEY,
  old_root    text        NOT NULL,
  new_root    text        NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('old-with-new', 'new-with-old')),
  cert_der    bytea       NOT NULL,
  not_after   timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (old_root, new_root, kind)
);

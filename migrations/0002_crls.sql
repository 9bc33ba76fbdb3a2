-- 0002_crls: signed CRLs and their numbers.
--
-- CRL Number (RFC 5280 §5.2.3) is one monotonic sequence per issuer, shared by full and delta CRLs,
-- never reused across restarts or instances: numbers are allocated by an atomic upsert on
-- crl_numbers. A number allocated for a CRL that was then not stored is simply skipped (gaps are
-- allowed; reuse is not).
CREATE TABLE crl_numbers (
  issuer_id   smallint PRIMARY KEY REFERENCES issuers (id),
  last_number bigint   NOT NULL CHECK (last_number > 0)
);

-- Every CRL fleetca signed. The HTTP adapter serves the newest per (issuer, kind, shard).
CREATE TABLE crls (
  id          bigserial   PRIMARY KEY,
  issuer_id   smallint    NOT NULL REFERENCES issuers (id),
  number      bigint      NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('full', 'delta')),
  shard       integer     NOT NULL DEFAULT 0 CHECK (shard >= 0),
  this_update timestamptz NOT NULL,
  next_update timestamptz NOT NULL,
  der         bytea       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (issuer_id, number),
  CHECK (next_update > this_update)
);
CREATE INDEX crls_latest_idx ON crls (issuer_id, kind, shard, number DESC);

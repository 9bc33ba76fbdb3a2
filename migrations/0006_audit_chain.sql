-- Tamper-evident audit log (issue 6): a hash chain over audit_log, sealed after the fact, and
-- signed anchors.
--
-- Writers keep inserting plain rows (no chain-head lock on the issuance hot path); a sealer
-- (src/ca/audit-chain.ts, one at a time under an advisory lock) later gives each committed row its
-- chain position `seq` and `hash = SHA-256(prev_hash || canonical bytes of the row)`. The chain
-- order is seq, not id: a row that commits late with a lower id simply gets the next seq.

ALTER TABLE audit_log
  ADD COLUMN seq       bigint,       -- chain position 1, 2, 3 …; NULL until sealed
  ADD COLUMN prev_hash bytea,        -- hash of the row at seq - 1 (32 zero bytes for seq 1)
  ADD COLUMN hash      bytea,        -- SHA-256(prev_hash || canonical row bytes)
  ADD COLUMN sealed_at timestamptz;

-- Unique among sealed rows (the last line of defence against two sealers giving out one seq).
-- Partial, so that inserts of unsealed rows (the hot path) do not touch it.
CREATE UNIQUE INDEX audit_log_seq_key ON audit_log (seq) WHERE seq IS NOT NULL;

-- What the sealer reads: unsealed rows in id order. Small: rows leave it within seconds.
CREATE INDEX audit_log_unsealed_idx ON audit_log (id) WHERE seq IS NULL;

-- `fleetca audit export --since`: a block-range index costs next to nothing per insert (rows
-- arrive in roughly `at` order) and spares an export of the last hour a scan of the whole log.
CREATE INDEX audit_log_at_brin ON audit_log USING brin (at);

-- Signed checkpoints of the chain head: signature over the anchor message (see audit-chain.ts)
-- by the dedicated audit key, whose SubjectPublicKeyInfo is kept with each anchor.
CREATE TABLE audit_anchors (
  seq       bigint      PRIMARY KEY,
  hash      bytea       NOT NULL,
  signed_at timestamptz NOT NULL,
  signature bytea       NOT NULL,
  key_spki  bytea       NOT NULL
);

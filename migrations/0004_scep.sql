-- 0004_scep: SCEP transactions, and which one-time secret an approval request was made with.

-- SCEP transactions (RFC 8894 §3.2.1.1) that led somewhere (a queued request or a certificate),
-- by transactionID and signer, bound to their CSR: a retransmission of the same request gets the
-- same answer; the same transaction with another CSR is refused as a replay; CertPoll finds its
-- request here. The signer is hashed as its certificate's issuer + public key: clients such as
-- strongSwan derive the transactionID from the public key and make a new self-signed certificate
-- for it on every run, and a same-key renewal signed by the issued certificate is another
-- transaction.
CREATE TABLE scep_transactions (
  transaction_id text        NOT NULL CHECK (length(transaction_id) BETWEEN 1 AND 256),
  csr_sha256     bytea       NOT NULL,
  signer_sha256  bytea       NOT NULL,
  request_id     bigint,
  serial         text        COLLATE "C",
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL,
  PRIMARY KEY (transaction_id, signer_sha256)
);

-- A request queued with a one-time secret remembers it: issuing the approved request consumes it.
ALTER TABLE enrollment_requests ADD COLUMN secret_id bigint;

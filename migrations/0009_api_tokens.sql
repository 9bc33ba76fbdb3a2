-- 0009_api_tokens: bearer tokens of the admin API (issue 6). The token is shown once; only its
-- HMAC is kept (tokens are random: a slow hash would add nothing).
CREATE TABLE api_tokens (
  id            text        PRIMARY KEY,
  name          text        NOT NULL UNIQUE,
  role          text        NOT NULL CHECK (role IN ('admin', 'operator', 'factory', 'auditor', 'nac')),
  mac           bytea       NOT NULL,
  created_at    timestamptz NOT NULL,
  created_by    text        NOT NULL,
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  last_used_at  timestamptz
);

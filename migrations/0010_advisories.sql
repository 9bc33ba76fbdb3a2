-- 0010_advisories: firmware-vulnerability response (issue 6). An advisory selects devices by model
-- and firmware range and quarantines them, restricts their next certificate to another profile, or
-- caps the validity of their next certificate. Restrict and shorten are kept on the device until
-- the advisory is withdrawn.
CREATE TABLE advisories (
  id                  bigserial   PRIMARY KEY,
  model               text        NOT NULL,
  firmware_range      text        NOT NULL,
  action              text        NOT NULL CHECK (action IN ('quarantine', 'restrict', 'shorten')),
  restricted_profile  text,
  max_validity_ms     bigint      CHECK (max_validity_ms > 0),
  reason              text        NOT NULL,
  devices             text[]      NOT NULL,
  created_at          timestamptz NOT NULL,
  created_by          text        NOT NULL,
  withdrawn_at        timestamptz,
  withdrawn_by        text,
  CHECK ((action = 'restrict') = (restricted_profile IS NOT NULL)),
  CHECK ((action = 'shorten') = (max_validity_ms IS NOT NULL))
);

ALTER TABLE devices ADD COLUMN restricted_profile text;
ALTER TABLE devices ADD COLUMN max_validity_ms bigint CHECK (max_validity_ms > 0);
-- which advisory set them (withdrawing it clears only what it set)
ALTER TABLE devices ADD COLUMN restricted_by bigint REFERENCES advisories (id);
ALTER TABLE devices ADD COLUMN shortened_by bigint REFERENCES advisories (id);

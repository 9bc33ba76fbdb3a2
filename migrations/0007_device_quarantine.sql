-- 0007_device_quarantine: quarantine of a whole device (issue 6), with who, why and which
-- certificates the quarantine put on hold, so that lifting it releases exactly those.
CREATE TABLE device_quarantines (
  id            bigserial   PRIMARY KEY,
  device_id     text        NOT NULL REFERENCES devices (id),
  reason        text        NOT NULL,
  actor         text        NOT NULL,
  at            timestamptz NOT NULL,
  held_serials  text[]      NOT NULL,
  released_at   timestamptz,
  released_by   text,
  CHECK ((released_at IS NULL) = (released_by IS NULL))
);
-- at most one open quarantine per device
CREATE UNIQUE INDEX device_quarantines_open_idx ON device_quarantines (device_id) WHERE released_at IS NULL;

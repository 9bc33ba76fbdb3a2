-- 0008_webhooks: one durable outbox for every event (issue 6). Events come from the audit log, so
-- every action that is audited can be delivered, in the same transaction as the action itself.

-- The endpoints of ca-config, written by the server at start (name, and the event types it wants).
CREATE TABLE webhook_endpoints (
  name    text   PRIMARY KEY,
  events  text[] NOT NULL
);

CREATE TABLE events (
  id          bigserial   PRIMARY KEY,
  event_id    uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  type        text        NOT NULL,
  at          timestamptz NOT NULL,
  subject     text,
  data        jsonb       NOT NULL
);

-- One row per (endpoint, event): at-least-once delivery with retries; `event_id` lets receivers
-- drop duplicates.
CREATE TABLE webhook_deliveries (
  endpoint         text        NOT NULL,
  event            bigint      NOT NULL REFERENCES events (id),
  state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  delivered_at     timestamptz,
  PRIMARY KEY (endpoint, event)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- After every INSERT into audit_log (one call per statement, so the issuance group commit pays one
-- check, not one per row): the rows whose action some endpoint wants become events and deliveries.
CREATE FUNCTION fleetca_audit_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoints) THEN
    RETURN NULL;
  END IF;
  WITH wanted AS (
    SELECT n.* FROM new_rows n
     WHERE EXISTS (SELECT 1 FROM webhook_endpoints w WHERE n.action = ANY (w.events))
     ORDER BY n.id
  ), ev AS (
    INSERT INTO events (type, at, subject, data)
    SELECT action, at, target, jsonb_build_object('actor', actor, 'details', details) FROM wanted
    RETURNING id, type
  )
  INSERT INTO webhook_deliveries (endpoint, event)
  SELECT w.name, ev.id FROM ev JOIN webhook_endpoints w ON ev.type = ANY (w.events);
  IF FOUND THEN
    PERFORM pg_notify('fleetca_events', '');
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER audit_log_events
  AFTER INSERT ON audit_log
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT
  EXECUTE FUNCTION fleetca_audit_events();

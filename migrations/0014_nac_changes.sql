-- 0014_nac_changes: what changed for the NAC since a cursor (issue 8, GET /api/v1/nac/identities).
--
-- A change is stamped with the 64-bit id of the transaction that made it (xid8). A reader returns
-- the changes of transactions below the xmin of its snapshot — every one of those has ended, so no
-- change can later appear below that mark — and hands the mark back as the next cursor. Nothing
-- is missed whatever order concurrent transactions commit in.
--
-- Device-level changes (inventory fields, state, and the last_enrolled_at touch every issuance
-- makes) stamp devices.nac_xid in a BEFORE trigger: the row is being written anyway, and the
-- column is left unindexed so that the issuance touch stays a HOT update (the reader scans).
-- Certificate status changes (revoke, hold, release) append to nac_changes instead of updating
-- the device row, which would take the device's row lock inside every revocation and invite
-- deadlocks with a concurrent quarantine (device first, then certificates).
ALTER TABLE devices ADD COLUMN nac_xid xid8;

CREATE FUNCTION fleetca_device_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.nac_xid := pg_current_xact_id();
  RETURN NEW;
END;
$$;
CREATE TRIGGER devices_nac_stamp BEFORE INSERT OR UPDATE ON devices
  FOR EACH ROW EXECUTE FUNCTION fleetca_device_stamp();
UPDATE devices SET nac_xid = pg_current_xact_id();

CREATE TABLE nac_changes (
  xid        xid8        NOT NULL,
  device_id  text        COLLATE "C" NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nac_changes_xid_idx ON nac_changes (xid);

CREATE FUNCTION fleetca_certificate_nac_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO nac_changes (xid, device_id) VALUES (pg_current_xact_id(), NEW.device_id);
  RETURN NULL;
END;
$$;
CREATE TRIGGER certificates_nac_change
  AFTER UPDATE OF status ON certificates
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.device_id IS NOT NULL)
  EXECUTE FUNCTION fleetca_certificate_nac_change();

-- 0011_inventory: what an operator needs to know about each device (issue 6).
--   segment        where the device sits on the network (free text: site, building, VLAN), set by admins
--   nac_role       the NAC identity group / role of this device when it differs from its profile's nacRole
--   first_seen_at  when the device first received a certificate (registration is created_at)
ALTER TABLE devices ADD COLUMN segment text;
ALTER TABLE devices ADD COLUMN nac_role text;
ALTER TABLE devices ADD COLUMN first_seen_at timestamptz;

UPDATE devices d SET first_seen_at = c.first
FROM (SELECT device_id, min(created_at) AS first FROM certificates WHERE device_id IS NOT NULL GROUP BY device_id) c
WHERE c.device_id = d.id;

CREATE INDEX devices_segment_idx ON devices (segment) WHERE segment IS NOT NULL;

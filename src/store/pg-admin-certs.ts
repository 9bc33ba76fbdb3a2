/** SQL of the admin CA and admin client certificates (migration 0012); PgStore delegates to these functions. */
import type pg from 'pg';
import { notFound } from '../core/errors.js';
import type { AdminCaRecord, AdminCertificate, AuditEntry, NewAdminCertificate } from '../ca/ports.js';

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => Promise<pg.QueryResult<R>>;

interface CaRow {
  cert_der: Buffer;
  not_before: Date;
  not_after: Date;
  created_at: Date;
  created_by: string;
}

interface CertRow {
  serial: string;
  fingerprint: Buffer | null;
  cert_der: Buffer | null;
  name: string;
  role: AdminCertificate['role'];
  not_before: Date;
  not_after: Date;
  created_at: Date;
  created_by: string;
  revoked_at: Date | null;
  revoked_by: string | null;
}

const CERT_COLUMNS = 'serial, fingerprint, cert_der, name, role, not_before, not_after, created_at, created_by, revoked_at, revoked_by';

const toCa = (r: CaRow): AdminCaRecord => ({ certDer: r.cert_der, notBefore: r.not_before, notAfter: r.not_after, createdAt: r.created_at, createdBy: r.created_by });

const toCert = (r: CertRow): AdminCertificate => ({
  serial: r.serial,
  fingerprint: r.fingerprint,
  certDer: r.cert_der,
  name: r.name,
  role: r.role,
  notBefore: r.not_before,
  notAfter: r.not_after,
  createdAt: r.created_at,
  createdBy: r.created_by,
  revokedAt: r.revoked_at,
  revokedBy: r.revoked_by,
});

const auditValues = (a: AuditEntry) => [a.at, a.actor, a.action, a.target, JSON.stringify(a.details ?? {})];

export async function getAdminCa(q: Query): Promise<AdminCaRecord | null> {
  const r = await q<CaRow>('SELECT cert_der, not_before, not_after, created_at, created_by FROM admin_ca WHERE id', [], 'fleetca_admin_ca');
  return r.rows[0] ? toCa(r.rows[0]) : null;
}

/** Inserts the admin CA unless there is one (then nothing is written); returns the stored row. */
export async function saveAdminCa(q: Query, ca: AdminCaRecord, audit: AuditEntry): Promise<AdminCaRecord> {
  await q(
    `WITH ins AS (
       INSERT INTO admin_ca (id, cert_der, not_before, not_after, created_at, created_by) VALUES (true, $1, $2, $3, $4, $5)
       ON CONFLICT (id) DO NOTHING RETURNING id
     )
     INSERT INTO audit_log (at, actor, action, target, details) SELECT $6, $7, $8, $9, $10 FROM ins`,
    [ca.certDer, ca.notBefore, ca.notAfter, ca.createdAt, ca.createdBy, ...auditValues(audit)],
  );
  const stored = await getAdminCa(q);
  if (!stored) throw notFound('the admin CA was not stored');
  return stored;
}

export async function reserveAdminCertificate(q: Query, c: NewAdminCertificate, audit: AuditEntry): Promise<void> {
  await q(
    `WITH ins AS (
       INSERT INTO admin_certificates (serial, name, role, not_before, not_after, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING serial
     )
     INSERT INTO audit_log (at, actor, action, target, details) SELECT $8, $9, $10, $11, $12 FROM ins`,
    [c.serial, c.name, c.role, c.notBefore, c.notAfter, c.createdAt, c.createdBy, ...auditValues(audit)],
  );
}

export async function completeAdminCertificate(q: Query, serial: string, certDer: Buffer, fingerprint: Buffer, audit: AuditEntry): Promise<AdminCertificate> {
  const r = await q<CertRow>(
    `WITH upd AS (
       UPDATE admin_certificates SET cert_der = $2, fingerprint = $3 WHERE serial = $1 AND cert_der IS NULL RETURNING ${CERT_COLUMNS}
     ), a AS (
       INSERT INTO audit_log (at, actor, action, target, details) SELECT $4, $5, $6, $7, $8 FROM upd
     )
     SELECT * FROM upd`,
    [serial, certDer, fingerprint, ...auditValues(audit)],
  );
  if (!r.rows[0]) throw notFound(`no reserved admin certificate with serial ${serial}`);
  return toCert(r.rows[0]);
}

export async function findAdminCertificate(q: Query, fingerprint: Buffer): Promise<AdminCertificate | null> {
  const r = await q<CertRow>(`SELECT ${CERT_COLUMNS} FROM admin_certificates WHERE fingerprint = $1`, [fingerprint], 'fleetca_admin_cert_by_fp');
  return r.rows[0] ? toCert(r.rows[0]) : null;
}

export async function listAdminCertificates(q: Query, filter: { name?: string } = {}): Promise<AdminCertificate[]> {
  const r = await q<CertRow>(`SELECT ${CERT_COLUMNS} FROM admin_certificates WHERE ($1::text IS NULL OR name = $1) ORDER BY name, created_at, serial`, [filter.name ?? null]);
  return r.rows.map(toCert);
}

export async function revokeAdminCertificates(q: Query, by: { name: string } | { serial: string }, at: Date, actor: string): Promise<AdminCertificate[]> {
  // the column is chosen here, never from input
  const column = 'name' in by ? 'name' : 'serial';
  const r = await q<CertRow>(
    `WITH upd AS (
       UPDATE admin_certificates SET revoked_at = $2, revoked_by = $3
        WHERE ${column} = $1 AND revoked_at IS NULL
       RETURNING ${CERT_COLUMNS}
     ), a AS (
       INSERT INTO audit_log (at, actor, action, target, details)
       SELECT $2, $3, 'admin-cert.revoked', name, jsonb_build_object('serial', serial, 'role', role) FROM upd
     )
     SELECT * FROM upd ORDER BY created_at, serial`,
    ['name' in by ? by.name : by.serial, at, actor],
  );
  return r.rows.map(toCert);
}

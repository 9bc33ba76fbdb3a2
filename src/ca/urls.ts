/**
 * The URL layout baked into certificates. Settled once: changing it would orphan the CDP and AIA
 * URLs of every certificate already issued. All paths hang off the public base URL
 * (`fleetca init --public-url`, default http://localhost:8080), served by the plain HTTP listener.
 *
 *   CRL (full)          <base>/crl/<issuer>.crl        DER; `.pem` suffix for PEM
 *   CRL shard n         <base>/crl/<issuer>-<n>.crl     only when partitioning is on
 *   delta CRL           <base>/crl/<issuer>-delta.crl
 *   OCSP                <base>/ocsp/<issuer>           POST, or GET <base>/ocsp/<issuer>/<b64>
 *   caIssuers           <base>/ca/<issuer>.crt          DER certificate of the issuer
 */
export interface IssuerUrls {
  crl: string;
  deltaCrl: string;
  ocsp: string;
  caIssuers: string;
}

export function normalizeBaseUrl(u: string): string {
  const url = new URL(u);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`public URL must be http(s): ${u}`);
  if (url.search || url.hash) throw new Error(`public URL must not have a query or fragment: ${u}`);
  return url.toString().replace(/\/+$/, '');
}

export function issuerUrls(base: string, issuerName: string): IssuerUrls {
  const b = normalizeBaseUrl(base);
  return {
    crl: `${b}/crl/${issuerName}.crl`,
    deltaCrl: `${b}/crl/${issuerName}-delta.crl`,
    ocsp: `${b}/ocsp/${issuerName}`,
    caIssuers: `${b}/ca/${issuerName}.crt`,
  };
}

/** The URL of CRL shard `n` (1-based) of an issuer: `<base>/crl/<issuer>-<n>.crl`. */
export function shardCrlUrl(urls: IssuerUrls, n: number): string {
  return urls.crl.replace(/\.crl$/, `-${n}.crl`);
}

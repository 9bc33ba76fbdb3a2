/**
 * `npx tsx bench/rsa-kt.ts [--n 4000] [--rounds 3]`: the cost of RSA key transport decryption
 * with implicit rejection (src/signing/rsa-kt.ts) next to the raw RSA-2048 private operation it is
 * built on. Prints the median rate of `rounds` rounds of `n` operations for: raw privateDecrypt
 * (RSA_NO_PADDING) alone, decrypt() of valid ciphertexts, decrypt() of ciphertexts with bad
 * padding. A throughput figure, not a side-channel test: the rates of the last two should agree
 * within noise, but telling apart distributions of single timings needs a proper statistical tool
 * (e.g. tlsfuzzer's marvin-toolkit), not this.
 */
import crypto from 'node:crypto';
import { createKeyTransportDecryptor } from '../src/signing/rsa-kt.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('n', 4000);
const ROUNDS = arg('rounds', 3);

const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
const kt = createKeyTransportDecryptor(privateKey);

// 64 distinct ciphertexts of each kind, cycled, so no single input gets special treatment
const valid = Array.from({ length: 64 }, () =>
  crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, crypto.randomBytes(16)),
);
const invalid = Array.from({ length: 64 }, (_, i) => {
  const em = crypto.randomBytes(256);
  em[0] = 0x00;
  em[1] = i % 2 === 0 ? 0x01 : 0x02; // half with a wrong block type, half with a random (misplaced) separator
  return crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_NO_PADDING }, em);
});

const cases: Array<[string, (i: number) => unknown]> = [
  ['raw privateDecrypt (RSA_NO_PADDING)', (i) => crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_NO_PADDING }, valid[i & 63]!)],
  ['decrypt(), valid padding', (i) => kt.decrypt(valid[i & 63]!, 16)],
  ['decrypt(), invalid padding', (i) => kt.decrypt(invalid[i & 63]!, 16)],
];

function rate(op: (i: number) => unknown): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) op(i);
  return N / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (const [, op] of cases) rate(op); // warm-up (JIT, OpenSSL's blinding and Montgomery caches)
const results = cases.map(([name]) => ({ name, rates: [] as number[] }));
// rounds interleave the cases so that drift (thermal, other load) hits all of them alike
for (let r = 0; r < ROUNDS; r++) cases.forEach(([, op], j) => results[j]!.rates.push(rate(op)));

console.log(`RSA-2048, node ${process.version}, OpenSSL ${process.versions.openssl}, n=${N}, median of ${ROUNDS}`);
const base = median(results[0]!.rates);
for (const { name, rates } of results) {
  const m = median(rates);
  console.log(`${name.padEnd(38)} ${m.toFixed(0).padStart(6)}/s  ${((1e6 / m)).toFixed(1).padStart(6)} µs/op  ${((m / base) * 100).toFixed(1).padStart(5)}%  [${rates.map((x) => x.toFixed(0)).join(', ')}]`);
}

/**
 * Worker body for the floor measurements on every core: raw P-256 signatures, and the issuance
 * floor (CSR public-key import + verify + one signature), with no fleetca code in the loop.
 */
import crypto from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { floorIssue, rawSignLoop, type RawCsr } from './floors.js';

const { op, count, csrs, keyPem } = workerData as { op: 'sign' | 'floor'; count: number; csrs: RawCsr[]; keyPem: string };
const key = crypto.createPrivateKey(keyPem);
const tbs = crypto.randomBytes(420);
const t0 = performance.now();
if (op === 'sign') rawSignLoop(key, tbs, count);
else for (let i = 0; i < count; i++) floorIssue(csrs[i % csrs.length]!, key, tbs);
parentPort!.postMessage(performance.now() - t0);

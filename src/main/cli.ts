/** Composition root of the `fleetca` command: wires the CLI to the concrete runtime and server. */
import { readEnv } from '../config/env.js';
import { runCli, type CliHost } from '../cli/program.js';
import { openRuntime } from './runtime.js';
import { serve } from './server.js';
import { registerEndpointExport } from '../exports/endpoints-cli.js';
import { registerFreeradiusExports } from '../exports/freeradius-cli.js';

export function defaultHost(): CliHost {
  const env = readEnv();
  const out = (s: string) => void process.stdout.write(s);
  return {
    env,
    out,
    err: (s: string) => void process.stderr.write(s),
    open: (o) => openRuntime({ env, dataDir: o.dataDir, ...(o.rootKeyFile ? { rootKeyFile: o.rootKeyFile } : {}), ...(o.loadIssuers === false ? { loadIssuers: false } : {}), ...(o.workers ? { workers: true } : {}) }),
    serve: (o) => serve(o, out),
    registerExports: (group, ctx) => {
      registerEndpointExport(group, ctx);
      registerFreeradiusExports(group, ctx);
    },
  };
}

export async function main(argv: string[]): Promise<void> {
  const code = await runCli(defaultHost(), argv);
  process.exitCode = code;
}

// Runs the fleetca CLI from source in a child process (tests spawn it with `node --import tsx`).
import { main } from '../../src/main/cli.js';

await main(process.argv.slice(2));

/**
 * The import rule of docs/ARCHITECTURE.md, checked in CI (`npm run check:deps`):
 *   core ← config ← pki ← signing ← ca ← enrollment ← bulk ← { http, protocols, jobs, provisioning, exports, cli } ← main
 * store implements the ports of ca/, enrollment/ and bulk/; only main (and tests) import it.
 * bulk (factory batches) is a layer, not an adapter: the CLI and the admin API both drive it.
 */
const layers = ['core', 'config', 'pki', 'signing', 'ca', 'enrollment', 'bulk'];
const adapters = ['http', 'protocols', 'jobs', 'provisioning', 'exports', 'cli'];

const forbidden = [];
// each base layer may import only the layers before it
layers.forEach((layer, i) => {
  const higher = [...layers.slice(i + 1), ...adapters, 'store', 'main'];
  forbidden.push({
    name: `${layer}-imports-upward`,
    comment: `src/${layer} may import only ${layers.slice(0, i).join(', ') || 'nothing of fleetca'}`,
    severity: 'error',
    from: { path: `^src/${layer}/` },
    to: { path: `^src/(${higher.join('|')})/` },
  });
});
// adapters: never store or main; protocols may use http's shared pieces; adapters don't import each other otherwise
for (const a of adapters) {
  const others = adapters.filter((x) => x !== a && !(a === 'protocols' && x === 'http'));
  forbidden.push({
    name: `${a}-imports-sideways-or-store`,
    comment: `src/${a} reaches storage only through ports; only main builds concrete stores`,
    severity: 'error',
    from: { path: `^src/${a}/` },
    to: { path: `^src/(${[...others, 'store', 'main'].join('|')})/` },
  });
}
forbidden.push({
  name: 'store-imports-upward',
  comment: 'src/store implements ports; it imports only core, config and the port declarations (ca/ports, enrollment/ports, bulk/ports)',
  severity: 'error',
  from: { path: '^src/store/' },
  to: { path: '^src/(pki|signing|enrollment|bulk|http|protocols|jobs|provisioning|exports|cli|main)/', pathNot: '^src/(enrollment|bulk)/ports\\.ts$' },
});
forbidden.push({
  name: 'no-circular',
  severity: 'error',
  from: {},
  to: { circular: true },
});

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
};

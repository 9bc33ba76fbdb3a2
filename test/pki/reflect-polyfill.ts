/**
 * Minimal Reflect metadata polyfill for @peculiar/x509 2.x (its tsyringe dependency refuses to
 * load without one, and neither `reflect-metadata` nor `@abraham/reflection` is installed).
 * Test-only: import it before '@peculiar/x509'.
 */
type Key = string | symbol | undefined;
const store = new WeakMap<object, Map<Key, Map<unknown, unknown>>>();

function own(target: object, prop: Key, create: boolean): Map<unknown, unknown> | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let m = byProp.get(prop);
  if (!m && create) {
    m = new Map();
    byProp.set(prop, m);
  }
  return m;
}

const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== 'function') {
  R.defineMetadata = (k: unknown, v: unknown, target: object, prop?: Key) => own(target, prop, true)!.set(k, v);
  R.getOwnMetadata = (k: unknown, target: object, prop?: Key) => own(target, prop, false)?.get(k);
  R.hasOwnMetadata = (k: unknown, target: object, prop?: Key) => own(target, prop, false)?.has(k) ?? false;
  R.getMetadata = (k: unknown, target: object, prop?: Key): unknown => {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t) as object | null) {
      const m = own(t, prop, false);
      if (m?.has(k)) return m.get(k);
    }
    return undefined;
  };
  R.hasMetadata = (k: unknown, target: object, prop?: Key) => (R.getMetadata as (...a: unknown[]) => unknown)(k, target, prop) !== undefined;
  R.metadata = (k: unknown, v: unknown) => (target: object, prop?: Key) => own(target, prop, true)!.set(k, v);
}
export {};

/**
 * Stands in for Node-only modules in the browser bundle (see vite.config.ts `resolve.alias`): the library loads
 * them lazily behind `typeof process` checks, so in a page they are never called; if one were, this says why.
 */
export function nodeGpu(): never {
  throw new Error('Node-only module called in the browser (the page uses navigator.gpu)');
}
export function nodeFolder(): never {
  throw new Error('Node-only module called in the browser');
}

/**
 * Vite for the demo page: `npm run dev` (= `vite web`) serves it, `vite build web` writes web/dist/.
 * The page imports the engine from ../src unchanged; the worker is an ES module worker (it code-splits the
 * tokenizer and backend modules it imports lazily).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  // Node-only modules that src/ imports lazily (Dawn's adapter, the file writer) are stubbed in the page.
  resolve: {
    alias: [
      { find: /^\.\/node-adapter\.js$/, replacement: fileURLToPath(new URL('./node-only.ts', import.meta.url)) },
      { find: /^\.\.\/format\/node-writer\.js$/, replacement: fileURLToPath(new URL('./node-only.ts', import.meta.url)) },
    ],
  },
  worker: { format: 'es' },
  // the committed demo model is served by the app itself at /demo/ (dev server and build, with HTTP Range)
  publicDir: fileURLToPath(new URL('../models', import.meta.url)),
  server: { fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // the generation page and the Bench view
    rollupOptions: { input: { index: fileURLToPath(new URL('./index.html', import.meta.url)), bench: fileURLToPath(new URL('./bench.html', import.meta.url)) } },
  },
});

// The dashboard's build: one bundle under dist/web, served by the API process at `/` (no CDN).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  build: { outDir: fileURLToPath(new URL('../../dist/web', import.meta.url)), emptyOutDir: true, sourcemap: true },
  oxc: { jsx: { runtime: 'automatic' } },
});

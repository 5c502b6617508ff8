import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// `npm run dev` proxies the API to a running `marketplace dev`
// (MARKETPLACE_URL, default http://127.0.0.1:8080).
const api = process.env.MARKETPLACE_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Committed: no source maps, stable names from content hashes only.
    sourcemap: false,
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: {
      '/v1': { target: api, changeOrigin: false },
      '/dev': { target: api },
      '/console/config.json': { target: api },
    },
  },
});

// Built by CMake (runtime/CMakeLists.txt) into the build folder and embedded in the iogrid binary; nothing is
// fetched at run time (no CDN): every script and style is bundled here.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: { assetsDir: 'assets', sourcemap: false, target: 'es2020', chunkSizeWarningLimit: 400 },
});

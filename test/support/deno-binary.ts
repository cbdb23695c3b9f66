import { createRequire } from 'node:module';

/** The Deno executable the `deno` npm package ships. Not node_modules/.bin/deno: without the package's postinstall
 * that is a Node wrapper, which would die of a SIGTERM meant for Deno and leave Deno running. */
export function denoBinary(): string {
  const require = createRequire(import.meta.url);
  return (require('deno/install_api.cjs') as { runInstall(): string }).runInstall();
}

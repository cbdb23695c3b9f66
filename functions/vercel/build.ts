// `npm run build:vercel` (Vercel's buildCommand): bundles the two Vercel entries, with lib/, into plain ES modules
// under dist/vercel/ for api/node.js and api/edge.js to re-export. Vercel's Node.js builder would compile each
// TypeScript file on its own and keep the `.ts` in every import, which Node then cannot resolve; a bundle has no
// relative imports left. Packages stay external: Vercel traces (Node.js) or bundles (Edge) them from node_modules.
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../../', import.meta.url));
const outdir = `${root}dist/vercel`;

const common = { bundle: true, format: 'esm', packages: 'external', target: 'es2022', logLevel: 'warning' } as const;
await build({ ...common, platform: 'node', entryPoints: [`${root}functions/vercel/node.ts`], outfile: `${outdir}/node.js` });
// The edge has Web APIs only: a Node built-in reaching this bundle fails the build here, not at the edge.
await build({ ...common, platform: 'neutral', entryPoints: [`${root}functions/vercel/edge.ts`], outfile: `${outdir}/edge.js` });
// Vercel serves this folder as the static output: empty, so that no file of the repository is served and every
// path reaches the function.
await mkdir(`${outdir}/static`, { recursive: true });
console.log(`built ${outdir}/node.js and ${outdir}/edge.js`);

// The Vercel function on the Edge runtime (@neondatabase/serverless). To use it instead of api/node.js, point the
// rewrite in vercel.json at /api/edge. The bundle is built by `npm run build:vercel` from functions/vercel/edge.ts.
export const config = { runtime: 'edge' };
export { default } from '../dist/vercel/edge.js';

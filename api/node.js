// The Vercel function (Node.js runtime) that vercel.json routes every path to. Plain JavaScript on purpose: the
// bundle it re-exports is built by `npm run build:vercel` (vercel.json's buildCommand) from functions/vercel/node.ts.
export { default } from '../dist/vercel/node.js';

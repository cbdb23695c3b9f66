#!/usr/bin/env node
// The `spendgate` command (package.json "bin"): loads the TypeScript CLI through tsx, which the package depends on.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');

#!/usr/bin/env node
'use strict';
// The published entry point runs the compiled CLI; `npm run build` produces dist/.
// graphql-js runs extra checks on every value outside production; the CLI is production.
process.env.NODE_ENV = process.env.NODE_ENV || 'production';
require('../dist/src/cli/main.js').main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err instanceof Error ? err.message : String(err)); process.exitCode = 1; },
);

/** `npm run migrate`: migrates the database at DATABASE_URL (default: the local server). */
import { databaseUrl } from './client';
import { migrate } from './migrate';

migrate(databaseUrl()).then(
  (r) => console.log(`applied ${r.applied.length} migration(s)${r.applied.length ? `: ${r.applied.join(', ')}` : ''}; ${r.alreadyApplied.length} already applied`),
  (err) => {
    console.error(`error: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);

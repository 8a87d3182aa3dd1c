/** A fresh PostgreSQL database per test file on the real server (DATABASE_URL's, default local), dropped afterwards. */
import { DEFAULT_DATABASE_URL } from '../../src/store/client';
import { createScratchDatabase, ScratchDatabase } from '../../src/store/scratch';

export function createTestDatabase(): Promise<ScratchDatabase> {
  return createScratchDatabase(process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL, 'apl_merge_test');
}

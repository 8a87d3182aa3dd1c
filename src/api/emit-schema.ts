/** `npm run emit-schema`: writes schema/schema.graphql, the checked-in snapshot of the API. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { schemaText } from './schema';

/** The project root: the nearest directory above this file with a package.json (src/ or dist/src/ alike). */
function projectRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

export const SCHEMA_FILE = join(projectRoot(), 'schema', 'schema.graphql');

if (require.main === module) {
  schemaText().then((text) => {
    mkdirSync(dirname(SCHEMA_FILE), { recursive: true });
    writeFileSync(SCHEMA_FILE, text);
    console.log(`wrote ${SCHEMA_FILE}`);
  });
}

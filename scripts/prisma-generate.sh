#!/bin/sh
# Generates the Prisma client (src/store/generated) offline. `prisma generate` needs no schema
# engine, but the CLI looks for one first and would try to download it: point it at a stand-in
# that fails, so it never does. (Never a stand-in that succeeds: `migrate` would then do nothing.)
set -e
stub="${TMPDIR:-/tmp}/apl-merge-no-schema-engine"
printf '#!/bin/sh\necho "no schema engine offline; migrations run with npm run migrate" >&2\nexit 1\n' > "$stub"
chmod +x "$stub"
PRISMA_SCHEMA_ENGINE_BINARY="$stub" npx prisma generate --no-hints >/dev/null

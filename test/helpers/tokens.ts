/** API tokens for tests: created in the store like `apl-merge token create` does. */
import { randomBytes } from 'node:crypto';
import { PrismaClient } from '../../src/store/client';
import { Role } from '../../src/store/generated/enums';
import { createToken } from '../../src/store/tokens';

export async function testToken(prisma: PrismaClient, role: Role = 'ADMIN', name = `test-${role.toLowerCase()}-${randomBytes(3).toString('hex')}`): Promise<string> {
  return (await createToken(prisma, { name, role })).token;
}

/** Who am I, API tokens and data roots: the caller's own identity for everyone; tokens and roots are managed by admins. */
import { Arg, Authorized, Ctx, Field, InputType, Mutation, ObjectType, Query, Resolver, registerEnumType } from 'type-graphql';
import { Role } from '../store/generated/enums';
import { addDataRoot, allDataRoots, DataRoot, removeDataRoot } from '../store/data-roots';
import { createToken, listTokens, parseDuration, revokeToken, TokenInfo } from '../store/tokens';
import { ApiContext } from './context';
import { payloadType } from './payloads';
import { withErrorCodes } from './errors';

registerEnumType(Role, { name: 'Role', description: 'VIEWER reads; OPERATOR also starts and cancels jobs and registers tasks; ADMIN also registers models from server paths and manages tokens and data roots' });

@ObjectType({ description: 'The caller, as their token says' })
class Viewer {
  @Field(() => String, { nullable: true, description: 'the token name; null for an anonymous reader' }) name: string | null;
  @Field(() => Role) role: Role;
  @Field(() => Date, { nullable: true }) expiresAt: Date | null;
}

@ObjectType({ description: 'An API token (its secret is shown only once, when it is created)' })
class ApiToken {
  @Field() name: string;
  @Field(() => Role) role: Role;
  @Field({ description: 'the first characters of the token, to tell tokens apart' }) prefix: string;
  @Field() createdAt: Date;
  @Field(() => Date, { nullable: true }) lastUsedAt: Date | null;
  @Field(() => Date, { nullable: true }) expiresAt: Date | null;
  @Field(() => Date, { nullable: true }) revokedAt: Date | null;
  @Field(() => String, { nullable: true, description: 'the token that created it' }) createdBy: string | null;
}

@ObjectType('CreateTokenPayload')
class CreatedToken {
  @Field({ description: 'the secret: shown this once, stored only as a hash' }) token: string;
  @Field(() => ApiToken) apiToken: ApiToken;
}

@InputType()
class CreateTokenInput {
  @Field() name: string;
  @Field(() => Role) role: Role;
  @Field(() => String, { nullable: true, description: 'lifetime such as 90m, 12h, 30d or 2w; absent: no expiry' }) expiresIn?: string;
}

@ObjectType('DataRoot', { description: 'A directory models and tasks may be registered from' })
class DataRootType {
  @Field({ description: 'paths under it are written data://NAME/relative/path' }) name: string;
  @Field({ description: 'the directory (admins only; others see data://NAME)' }) path: string;
  @Field({ description: 'config (given at start) or added (through addDataRoot)' }) source: string;
}

const toToken = (t: TokenInfo): ApiToken => ({ ...t });
const toRoot = (r: DataRoot): DataRootType => ({ ...r });

const RevokeTokenPayload = payloadType('RevokeToken', 'apiToken', ApiToken, 'The token, revoked');
const AddDataRootPayload = payloadType('AddDataRoot', 'dataRoot', DataRootType, 'The data root added');
const RemoveDataRootPayload = payloadType('RemoveDataRoot', 'dataRoot', DataRootType, 'The data root removed');

@Resolver()
export class AdminResolver {
  @Query(() => Viewer, { description: 'who the caller is: what the dashboard uses to offer only the controls a role may use' })
  viewer(@Ctx() { viewer }: ApiContext): Viewer {
    return { name: viewer.name, role: viewer.role, expiresAt: viewer.expiresAt };
  }

  @Authorized('ADMIN')
  @Query(() => [ApiToken], { description: 'every token, revoked and expired ones included (admin)' })
  async tokens(@Ctx() { prisma }: ApiContext): Promise<ApiToken[]> {
    return (await listTokens(prisma)).map(toToken);
  }

  @Authorized('ADMIN')
  @Mutation(() => CreatedToken, { description: 'creates a token (admin); the secret is in the answer and nowhere else' })
  async createToken(@Ctx() { prisma, viewer }: ApiContext, @Arg('input', () => CreateTokenInput) input: CreateTokenInput): Promise<CreatedToken> {
    return withErrorCodes(async () => {
      const expiresAt = input.expiresIn ? new Date(Date.now() + parseDuration(input.expiresIn)) : null;
      const created = await createToken(prisma, { name: input.name, role: input.role, expiresAt, createdBy: viewer.name });
      return { token: created.token, apiToken: toToken(created.info) };
    });
  }

  @Authorized('ADMIN')
  @Mutation(() => RevokeTokenPayload, { description: 'revokes a token (admin): its requests are refused and its WebSockets closed' })
  async revokeToken(@Ctx() { prisma }: ApiContext, @Arg('name') name: string): Promise<{ apiToken: ApiToken }> {
    return withErrorCodes(async () => ({ apiToken: toToken(await revokeToken(prisma, name)) }));
  }

  @Query(() => [DataRootType], { description: 'the data roots in force' })
  async dataRoots(@Ctx() { prisma, configuredRoots }: ApiContext): Promise<DataRootType[]> {
    return (await allDataRoots(prisma, configuredRoots)).map(toRoot);
  }

  @Authorized('ADMIN')
  @Mutation(() => AddDataRootPayload, { description: 'adds a directory of the server to the data roots (admin)' })
  async addDataRoot(@Ctx() { prisma, configuredRoots, viewer }: ApiContext, @Arg('name') name: string, @Arg('path') path: string): Promise<{ dataRoot: DataRootType }> {
    return withErrorCodes(async () => ({ dataRoot: toRoot(await addDataRoot(prisma, configuredRoots, { name, path, createdBy: viewer.name })) }));
  }

  @Authorized('ADMIN')
  @Mutation(() => RemoveDataRootPayload, { description: 'removes a data root added with addDataRoot (admin); models registered from it stay registered' })
  async removeDataRoot(@Ctx() { prisma, configuredRoots }: ApiContext, @Arg('name') name: string): Promise<{ dataRoot: DataRootType }> {
    return withErrorCodes(async () => ({ dataRoot: toRoot(await removeDataRoot(prisma, configuredRoots, name)) }));
  }
}

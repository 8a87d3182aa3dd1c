/**
 * Changing a registered model: its name, description and tags; archiving it (hidden from listings
 * by default, lineage kept); deleting it, which is refused while anything depends on it.
 */
import { Prisma, PrismaClient } from './generated/client';
import { checkName, RegistryError, uniquely } from './registry';

/** What to change; a field left out (or null) stays as it is. */
export interface ModelChanges {
  name?: string | null;
  description?: string | null;
  tags?: string[] | null;
}

function checkTags(tags: readonly string[]): void {
  if (tags.length > 50) throw new RegistryError('BAD_USER_INPUT', `tags: ${tags.length} given; at most 50`);
  for (const tag of tags) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,63}$/.test(tag)) throw new RegistryError('BAD_USER_INPUT', `tags: "${tag.slice(0, 80)}" must be 1 to 64 letters, digits or . _ : / + -, starting with a letter or digit`);
  }
}

async function existing(prisma: PrismaClient, id: string) {
  const model = await prisma.model.findUnique({ where: { id } });
  if (!model) throw new RegistryError('NOT_FOUND', `model ${id} does not exist`);
  return model;
}

export async function updateModel(prisma: PrismaClient, id: string, changes: ModelChanges) {
  await existing(prisma, id);
  const name = changes.name ?? undefined;
  const description = changes.description ?? undefined;
  if (name !== undefined) checkName('name', name);
  if (description !== undefined && description.length > 10_000) throw new RegistryError('BAD_USER_INPUT', `description is ${description.length} characters long; at most 10,000`);
  const tags = changes.tags ? [...new Set(changes.tags)] : undefined;
  if (tags) checkTags(tags);
  return uniquely(`a model named "${name}"`, () => prisma.model.update({ where: { id }, data: { name, description, tags } }));
}

export async function archiveModel(prisma: PrismaClient, id: string, archived: boolean) {
  await existing(prisma, id);
  return prisma.model.update({ where: { id }, data: { archivedAt: archived ? new Date() : null } });
}

/**
 * What keeps a model from being deleted: models derived from it, merges or analyses that use or
 * produced it, and evaluations of it still queued or running (ended ones go with the model).
 */
async function dependents(tx: Prisma.TransactionClient, id: string): Promise<string[]> {
  const [children, inputs, analyses, produced, evaluating] = await Promise.all([
    tx.lineageEdge.findMany({ where: { parentId: id }, include: { child: { select: { name: true } } } }),
    tx.mergeInput.findMany({ where: { modelId: id }, select: { mergeId: true } }),
    tx.importanceAnalysis.findMany({ where: { OR: [{ modelId: id }, { baseModelId: id }] }, select: { id: true } }),
    tx.merge.findMany({ where: { outputModelId: id }, select: { id: true } }),
    tx.evaluationRun.findMany({ where: { modelId: id, status: { in: ['QUEUED', 'RUNNING'] } }, select: { id: true, status: true } }),
  ]);
  return [
    ...children.map((c) => `model "${c.child.name}" derives from it`),
    ...[...new Set(inputs.map((i) => i.mergeId))].map((m) => `merge ${m} uses it`),
    ...analyses.map((a) => `analysis ${a.id} measures it`),
    ...produced.map((m) => `merge ${m} produced it`),
    ...evaluating.map((e) => `evaluation ${e.id} is ${e.status} (cancel it first)`),
  ];
}

/**
 * Deletes a model with its checkpoint record, evaluations (and ended evaluation runs) and the lineage edges to its parents.
 * The checkpoint's files are left where they are: the registry records them, it does not own them.
 */
export async function deleteModel(prisma: PrismaClient, id: string) {
  return prisma.$transaction(async (tx) => {
    const model = await tx.model.findUnique({ where: { id } });
    if (!model) throw new RegistryError('NOT_FOUND', `model ${id} does not exist`);
    const blocking = await dependents(tx, id);
    if (blocking.length > 0) {
      const shown = blocking.slice(0, 5).join('; ') + (blocking.length > 5 ? `; and ${blocking.length - 5} more` : '');
      throw new RegistryError('CONFLICT', `model "${model.name}" cannot be deleted: ${shown}. Archive it instead (archiveModel) to hide it from listings`);
    }
    await tx.evaluation.deleteMany({ where: { modelId: id } });
    await tx.evaluationRun.deleteMany({ where: { modelId: id } });
    await tx.lineageEdge.deleteMany({ where: { childId: id } });
    await tx.model.delete({ where: { id } });
    // Another model may share the checkpoint row (registered twice from one path): keep it then.
    if ((await tx.model.count({ where: { checkpointId: model.checkpointId } })) === 0) await tx.checkpoint.delete({ where: { id: model.checkpointId } });
    return model;
  });
}

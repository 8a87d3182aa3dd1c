/**
 * What the engine runs for a registered model: its checkpoint, or — for a LoRA adapter, which has
 * no weights of its own to run — MODEL+ADAPTER with the model it adapts (its one parent).
 */
import { isLoraAdapter } from '../engine/checkpoint/lora';
import { Prisma } from '../store/generated/client';
import { checkpointPath, RegistryError } from '../store/registry';

export async function runnableModel(prisma: Pick<Prisma.TransactionClient, 'lineageEdge'>, model: { id: string; name: string; checkpoint: { uri: string } }): Promise<string> {
  const path = checkpointPath(model.checkpoint.uri);
  if (!isLoraAdapter(path)) return path;
  const parents = await prisma.lineageEdge.findMany({ where: { childId: model.id }, include: { parent: { include: { checkpoint: true } } } });
  if (parents.length !== 1) throw new RegistryError('BAD_USER_INPUT', `"${model.name}" is a LoRA adapter with ${parents.length} parents; it runs as the one model it adapts`);
  return `${checkpointPath(parents[0].parent.checkpoint.uri)}+${path}`;
}

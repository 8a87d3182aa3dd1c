/** The store against a real PostgreSQL: migrations from scratch serve every model; lineage by recursive SQL. */
import { Client } from 'pg';
import { createPrisma, PrismaClient } from '../src/store/client';
import { ancestors, descendants, lineageGraph } from '../src/store/lineage';
import { migrate } from '../src/store/migrate';
import { createTestDatabase } from './helpers/database';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let prisma: PrismaClient;

beforeAll(async () => {
  database = await createTestDatabase();
  prisma = createPrisma(database.url);
});

afterAll(async () => {
  await prisma?.$disconnect();
  await database?.drop();
});

describe('migrations', () => {
  it('migrate a fresh database once, record it as Prisma does, and are idempotent', async () => {
    const first = await migrate(database.url);
    const all = ['0001_initial', '0002_job_results', '0003_security', '0004_workers', '0005_merge_output_names', '0006_model_lifecycle', '0007_job_leases', '0008_evaluation_runs', '0009_job_timing', '0010_lineage_version', '0011_task_kind'];
    expect(first.applied).toEqual(all);
    const second = await migrate(database.url);
    expect(second).toEqual({ applied: [], alreadyApplied: all });
    const client = new Client({ connectionString: database.url });
    await client.connect();
    const rows = await client.query('SELECT migration_name, checksum, finished_at FROM "_prisma_migrations"');
    await client.end();
    expect(rows.rows).toHaveLength(all.length);
    expect(rows.rows[0].checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(rows.rows[0].finished_at).toBeInstanceOf(Date);
  });

  it('leave a database that serves every model of schema.prisma', async () => {
    const checkpoint = await prisma.checkpoint.create({ data: { uri: 'file:///models/base', sha256: 'a'.repeat(64), bytes: 10n, dtype: 'F32', parameterCount: 5n, tensorCount: 2 } });
    const base = await prisma.model.create({ data: { name: 'serve-base', kind: 'BASE', architecture: 'mlp', checkpointId: checkpoint.id } });
    const ft = await prisma.model.create({ data: { name: 'serve-ft', kind: 'FINETUNE', architecture: 'mlp', checkpointId: checkpoint.id } });
    await prisma.lineageEdge.create({ data: { parentId: base.id, childId: ft.id, relation: 'finetune' } });
    const task = await prisma.task.create({ data: { name: 'serve-task', classes: 10, dataUri: 'file:///tasks/t.safetensors' } });
    const analysis = await prisma.importanceAnalysis.create({ data: { modelId: ft.id, taskId: task.id, level: 'row', estimator: 'exact', summary: { top: [1, 2] } } });
    const merge = await prisma.merge.create({
      data: { method: 'apl', parameters: { density: 0.5 }, seed: 3n, inputs: { create: [{ modelId: base.id, position: 0, isBase: true, parameters: {} }, { modelId: ft.id, position: 1, parameters: { weight: 1 } }] } },
      include: { inputs: true },
    });
    const evaluation = await prisma.evaluation.create({ data: { modelId: ft.id, taskId: task.id, split: 'test', metric: 'accuracy', value: 0.93 } });
    const event = await prisma.jobEvent.create({ data: { jobKind: 'merge', jobId: merge.id, phase: 'merge', done: 1, total: 4, message: 'x', status: 'RUNNING' } });
    expect(analysis.status).toBe('QUEUED');
    expect(merge.inputs.map((i) => i.position)).toEqual([0, 1]);
    expect(evaluation.value).toBeCloseTo(0.93);
    expect(typeof event.id).toBe('bigint');
    await expect(prisma.evaluation.create({ data: { modelId: ft.id, taskId: task.id, split: 'test', metric: 'accuracy', value: 0.5 } })).rejects.toThrow(/Unique constraint/);
    const loaded = await prisma.model.findUniqueOrThrow({ where: { id: ft.id }, include: { checkpoint: true, parents: true, evaluations: true, analyses: true, mergeInputs: true } });
    expect(loaded.parents[0].parentId).toBe(base.id);
  });
});

describe('lineage by recursive SQL', () => {
  it('finds ancestors and descendants to a depth, and the graph below a base', async () => {
    const checkpoint = await prisma.checkpoint.create({ data: { uri: 'file:///x', sha256: 'b'.repeat(64), bytes: 1n, dtype: 'F32', parameterCount: 1n, tensorCount: 1 } });
    const make = (name: string, kind: 'BASE' | 'FINETUNE' | 'MERGE') => prisma.model.create({ data: { name, kind, architecture: 'mlp', checkpointId: checkpoint.id } });
    const base = await make('tree-base', 'BASE');
    const a = await make('tree-a', 'FINETUNE');
    const b = await make('tree-b', 'FINETUNE');
    const m1 = await make('tree-m1', 'MERGE');
    const m2 = await make('tree-m2', 'MERGE');
    const edge = (parent: { id: string }, child: { id: string }, relation: string, weight?: number) => prisma.lineageEdge.create({ data: { parentId: parent.id, childId: child.id, relation, weight } });
    await edge(base, a, 'finetune');
    await edge(base, b, 'finetune');
    await edge(a, m1, 'merge', 0.7);
    await edge(b, m1, 'merge', 0.3);
    await edge(m1, m2, 'merge', 1);
    expect((await ancestors(prisma, m2.id)).map((n) => [n.name, n.depth])).toEqual([['tree-m1', 1], ['tree-a', 2], ['tree-b', 2], ['tree-base', 3]]);
    expect((await ancestors(prisma, m2.id, 2)).map((n) => n.name)).toEqual(['tree-m1', 'tree-a', 'tree-b']);
    expect((await descendants(prisma, base.id)).map((n) => [n.name, n.depth])).toEqual([['tree-a', 1], ['tree-b', 1], ['tree-m1', 2], ['tree-m2', 3]]);
    const graph = await lineageGraph(prisma, base.id);
    expect(graph.nodes.map((n) => n.name)).toEqual(['tree-base', 'tree-a', 'tree-b', 'tree-m1', 'tree-m2']);
    expect(graph.edges).toHaveLength(5);
    expect(graph.edges.filter((e) => e.childId === m1.id).map((e) => e.weight).sort()).toEqual([0.3, 0.7]);
    await expect(ancestors(prisma, m2.id, 0)).rejects.toThrow(/depth must be an integer from 1 to 100/);
  });
});

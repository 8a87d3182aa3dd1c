/**
 * A base's leaderboard over a real server and PostgreSQL: each model below the base with its
 * scores on a split beside the best fine-tune's (normalised accuracy), ranked, worked out by hand.
 */
import { startTestPlatform, TestPlatform } from './helpers/platform';

let platform: TestPlatform;
beforeAll(async () => {
  platform = await startTestPlatform();
});
afterAll(() => platform?.stop());

it('ranks the models below a base by mean normalised score, each score beside the best fine-tune\'s', async () => {
  const { prisma } = platform;
  const checkpoint = async () => (await prisma.checkpoint.create({ data: { uri: 'file:///x', sha256: 'a', bytes: 1n, dtype: 'F32', parameterCount: 1n, tensorCount: 1 } })).id;
  const model = async (name: string, kind: 'BASE' | 'FINETUNE' | 'MERGE', parents: string[] = []) => {
    const created = await prisma.model.create({ data: { name, kind, architecture: 'mlp', checkpointId: await checkpoint() } });
    for (const parentId of parents) await prisma.lineageEdge.create({ data: { parentId, childId: created.id, relation: kind === 'MERGE' ? 'merge' : 'finetune' } });
    return created.id;
  };
  const [a, b] = [await prisma.task.create({ data: { name: 'a', classes: 2, dataUri: 'file:///a' } }), await prisma.task.create({ data: { name: 'b', classes: 2, dataUri: 'file:///b' } })];
  const base = await model('base', 'BASE');
  const ftA = await model('ft-a', 'FINETUNE', [base]);
  const ftB = await model('ft-b', 'FINETUNE', [base]);
  const merged = await model('merged', 'MERGE', [base, ftA, ftB]);
  const other = await model('unrelated', 'BASE');
  const score = (modelId: string, taskId: string, value: number, split = 'test') => prisma.evaluation.create({ data: { modelId, taskId, split, metric: 'accuracy', value } });
  await score(ftA, a.id, 0.9);
  await score(ftA, b.id, 0.4);
  await score(ftB, b.id, 0.8);
  await score(merged, a.id, 0.6);
  await score(merged, b.id, 0.7);
  await score(merged, a.id, 0.1, 'ood');
  await score(other, a.id, 1);
  const QUERY = 'query($id: ID!, $split: String) { leaderboard(baseId: $id, split: $split) { model { name } average normalizedAverage scores { task { name } value bestFineTune normalized } } }';
  const result = await platform.gql<{ leaderboard: Array<{ model: { name: string }; average: number; normalizedAverage: number; scores: Array<{ task: { name: string }; value: number; bestFineTune: number; normalized: number }> }> }>(QUERY, { id: base, split: 'test' });
  expect(result.errors).toBeUndefined();
  const rows = result.data!.leaderboard;
  // ft-b: b 0.8/0.8 = 1; ft-a: a 1, b 0.4/0.8 = 0.5 → 0.75; merged: 0.6/0.9 and 0.7/0.8 → 0.7708…
  expect(rows.map((r) => r.model.name)).toEqual(['ft-b', 'merged', 'ft-a']);
  const row = rows.find((r) => r.model.name === 'merged')!;
  expect(row.average).toBeCloseTo(0.65, 12);
  expect(row.normalizedAverage).toBeCloseTo((0.6 / 0.9 + 0.7 / 0.8) / 2, 12);
  expect(row.scores).toEqual([
    { task: { name: 'a' }, value: 0.6, bestFineTune: 0.9, normalized: expect.closeTo(0.6 / 0.9, 12) },
    { task: { name: 'b' }, value: 0.7, bestFineTune: 0.8, normalized: expect.closeTo(0.875, 12) },
  ]);
  // Another split has its own rows; no fine-tune scored there, so nothing is normalised.
  const ood = (await platform.gql<{ leaderboard: Array<{ model: { name: string }; normalizedAverage: number | null }> }>(QUERY, { id: base, split: 'ood' })).data!.leaderboard;
  expect(ood).toEqual([{ model: { name: 'merged' }, average: 0.1, normalizedAverage: null, scores: [{ task: { name: 'a' }, value: 0.1, bestFineTune: null, normalized: null }] }]);
  const missing = await platform.gql(QUERY, { id: '00000000-0000-4000-8000-000000000000' });
  expect(missing.errors![0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });
});

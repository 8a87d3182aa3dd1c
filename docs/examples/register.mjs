// Register a base model, two fine-tunes of it and their tasks (an admin's token; paths under a data root).
import { gql } from './client.mjs';

const dir = process.env.APL_MERGE_MODELS; // a directory under one of the server's data roots
const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id name kind architecture checkpoint { tensorCount parameterCount dtype } evaluationRuns { status } } } }';

for (const task of ['alpha', 'beta']) {
  const { registerTask: { task: registered } } = await gql('mutation($input: RegisterTaskInput!) { registerTask(input: $input) { task { name classes description } } }', { input: { name: task, path: `${dir}/${task}.safetensors` } });
  console.log('task', JSON.stringify(registered));
}
const { registerModel: { model: base } } = await gql(REGISTER, { input: { name: 'base', kind: 'BASE', path: `${dir}/base` } });
console.log('model', JSON.stringify(base));
for (const task of ['alpha', 'beta']) {
  // A fine-tune names its base; it is queued for evaluation on the tasks it has a head for.
  const { registerModel: { model } } = await gql(REGISTER, { input: { name: `ft-${task}`, kind: 'FINETUNE', path: `${dir}/${task}`, parentIds: [base.id] } });
  console.log('model', JSON.stringify(model));
}

// Start an importance analysis, follow it live, then read its per-layer summary and a histogram.
import { follow, gql } from './client.mjs';

const { models } = await gql('{ models(filter: { nameContains: "ft-alpha" }) { nodes { id } } }');
const { tasks } = await gql('{ tasks(nameContains: "alpha") { nodes { id name } } }');
const { startAnalysis: { analysis: started } } = await gql('mutation($input: StartAnalysisInput!) { startAnalysis(input: $input) { analysis { id status level estimator } } }', {
  input: { modelId: models.nodes[0].id, taskId: tasks.nodes[0].id, level: 'ROW', estimator: 'EXACT' },
});
console.log('started', JSON.stringify(started));
console.log('ended', await follow(started.id));
const { analysis } = await gql('query($id: ID!) { analysis(id: $id) { status layers(top: 1) { layer partitions mean max top { partition value } } histogram(bins: 4) { lower upper count } } }', { id: started.id });
console.log(JSON.stringify(analysis, null, 1));

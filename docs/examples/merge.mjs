// Start a TIES merge of the two fine-tunes, follow it live, then read the merged model and its scores.
import { follow, gql } from './client.mjs';

const { models } = await gql('{ models(orderBy: { field: NAME, direction: ASC }) { nodes { id name kind } } }');
const id = (name) => models.nodes.find((m) => m.name === name).id;
const { startMerge: { merge: started } } = await gql('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id status method } } }', {
  input: {
    name: 'ties-alpha-beta',
    method: 'ties',
    baseModelId: id('base'),
    models: [{ modelId: id('ft-alpha'), parameters: { weight: 1, density: 0.5 } }, { modelId: id('ft-beta'), parameters: { weight: 1, density: 0.5 } }],
  },
});
console.log('started', JSON.stringify(started));
console.log('ended', await follow(started.id));
const { merge } = await gql('query($id: ID!) { merge(id: $id) { status timing { attempts } outputModel { name kind parents { relation weight model { name } } evaluations { nodes { task { name } split value } } } } }', { id: started.id });
console.log(JSON.stringify(merge, null, 1));

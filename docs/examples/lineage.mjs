// Lineage: the graph below a base, and a model's ancestors.
import { gql } from './client.mjs';

const { models } = await gql('{ models(filter: { kind: BASE, nameContains: "base" }, first: 1) { nodes { id name } } }');
const base = models.nodes[0];
const { lineage } = await gql('query($id: ID!) { lineage(baseId: $id) { nodes { name kind depth } edges { relation weight } } }', { id: base.id });
console.log(JSON.stringify(lineage, null, 1));
const { models: below } = await gql('query($base: ID!) { models(filter: { baseId: $base, kind: FINETUNE }, orderBy: { field: NAME, direction: ASC }) { totalCount nodes { name ancestors { name depth } } } }', { base: base.id });
console.log(JSON.stringify(below));

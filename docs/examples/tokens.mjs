// Tokens and roles: who am I; an admin creates a viewer token; a viewer reads but may not start jobs.
import { gql } from './client.mjs';

console.log(JSON.stringify((await gql('{ viewer { name role } }')).viewer));
const { createToken } = await gql('mutation($input: CreateTokenInput!) { createToken(input: $input) { token apiToken { name role } } }', { input: { name: 'reader', role: 'VIEWER' } });
console.log(JSON.stringify(createToken.apiToken));
const reader = createToken.token; // the secret, shown once: store it
console.log(JSON.stringify((await gql('{ viewer { name role } models { totalCount } }', {}, reader))));
try {
  await gql('mutation { startMerge(input: { method: "linear", models: [] }) { merge { id } } }', {}, reader);
} catch (err) {
  console.log(err.message);
}

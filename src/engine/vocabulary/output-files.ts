/**
 * The tokenizer files written beside a merge whose vocabulary was built (tokenizer_source): the
 * new tokenizer.json, tokenizer_config.json with its added tokens listed, and the source
 * tokenizer's other files as they are.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MergeInputError } from '../errors';
import { MergedVocabulary } from './merge-vocabulary';
import { newAddedTokens, TOKENIZER_FILE, TOKENIZER_FILES } from './tokenizer-json';

const TOKENIZER_CONFIG = 'tokenizer_config.json';

export function tokenizerFiles(vocabulary: MergedVocabulary): Array<[string, string | Uint8Array]> {
  const directory = dirname(vocabulary.from.path);
  const files: Array<[string, string | Uint8Array]> = [[TOKENIZER_FILE, JSON.stringify(vocabulary.tokenizer.json, null, 2) + '\n']];
  for (const name of TOKENIZER_FILES) {
    const path = join(directory, name);
    if (name === TOKENIZER_FILE || !existsSync(path)) continue;
    files.push([name, name === TOKENIZER_CONFIG ? tokenizerConfig(path, vocabulary) : readFileSync(path)]);
  }
  return files;
}

/** tokenizer_config.json with the tokens the merge added in its added_tokens_decoder (when it has one). */
function tokenizerConfig(path: string, vocabulary: MergedVocabulary): string {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new MergeInputError(`${path}: is not valid JSON (${(err as Error).message})`);
  }
  const decoder = json.added_tokens_decoder;
  if (typeof decoder === 'object' && decoder !== null) {
    const entries = { ...(decoder as Record<string, unknown>) };
    // Added tokens cut from the vocabulary (ids past the embedding's rows) leave the config too.
    for (const [id, entry] of Object.entries(entries)) {
      const content = (entry as { content?: unknown }).content;
      if (typeof content === 'string' && vocabulary.tokenizer.vocabulary.get(content) !== Number(id)) delete entries[id];
    }
    for (const { id, ...token } of newAddedTokens(vocabulary.tokenizer, vocabulary.from)) entries[String(id)] = token;
    json = { ...json, added_tokens_decoder: entries };
  }
  return JSON.stringify(json, null, 2) + '\n';
}

/** The README model card written beside a merged checkpoint (Hugging Face front matter). */
import { stringify } from 'yaml';
import { MergePlan } from './plan';

export function modelCard(plan: MergePlan, configText: string): string {
  const { config } = plan;
  const inputs = [...(config.baseModelGiven ? [config.baseModelGiven] : []), ...config.models.map((m) => m.given)];
  const frontMatter = stringify({
    base_model: inputs,
    base_model_relation: 'merge',
    library_name: 'transformers',
    tags: ['merge', 'apl-merge', config.method.name],
  });
  const lines = [
    '---',
    frontMatter.trimEnd(),
    '---',
    '',
    '# Merged model',
    '',
    `This model was merged with apl-merge using the ${config.method.prettyName} method (${config.method.reference}).`,
    '',
    '## Inputs',
    '',
    ...(config.baseModelGiven ? [`- base: \`${config.baseModelGiven}\``] : []),
    ...config.models.map((m) => `- \`${m.given}\``),
    '',
    ...(config.method.stochastic ? [`Random drops were drawn with seed ${config.seed}; the same seed reproduces this checkpoint bit for bit.`, ''] : []),
    '## Configuration',
    '',
    '```yaml',
    configText.trimEnd(),
    '```',
    '',
  ];
  return lines.join('\n');
}

/**
 * The command line: `apl-merge merge`, `inspect`, `methods` and `demo`.
 * A thin client of the engine: parse arguments, call the engine, print.
 */
import { Command, CommanderError, Option } from 'commander';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BackendChoice, BACKENDS, defaultBackend } from '../engine/backend-choice';
import { inspectCheckpoint } from '../engine/checkpoint/inspect';
import { extractLora } from '../engine/lora/extract';
import { MERGE_METHODS } from '../engine/methods/registry';
import { readMergeConfig } from '../engine/merge/config';
import { planMerge } from '../engine/merge/plan';
import { MergeResult, runMerge } from '../engine/merge/run';
import { NonFinitePolicy } from '../engine/merge/tensor-job';
import { writeSyntheticFamily } from '../engine/zoo/synthetic';
import type * as AplCommands from './apl-commands';
import type * as ServeModule from './serve';
import type * as StartModule from './start';
import type * as TokenModule from './token';
import type * as WorkerModule from '../jobs/worker-cli';

/** The APL commands load TensorFlow.js; merge, inspect and methods do not need it, so load it on use. */
const apl = () => require('./apl-commands') as typeof AplCommands;
import { formatBytes, formatCount, parseSize } from './format';
import { formatSeconds, terminalProgress } from './progress-bar';

interface MergeFlags {
  threads?: string;
  backend: BackendChoice;
  overwrite?: boolean;
  shardSize?: string;
  nonFinite: NonFinitePolicy;
  json?: boolean;
}

function parseThreads(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--threads must be a non-negative integer, got "${text}"`);
  return n;
}

function printMergeResult(result: MergeResult, out: (line: string) => void): void {
  out(`merged ${formatCount(result.tensors)} tensors (${formatCount(result.parameters)} parameters) with ${result.method} in ${formatSeconds(result.seconds)}`);
  if (MERGE_METHODS.find((m) => m.name === result.method)?.stochastic) out(`seed: ${result.seed}`);
  for (const file of result.files) out(`  ${file.name}  ${formatBytes(file.bytes)}  sha256 ${file.sha256}`);
  const { device } = result;
  if (device.gpu) {
    out(`device: ${device.gpuTensors} tensors on the GPU (${device.gpu}), ${device.cpuTensors} on the CPU${device.cpuReasons.length ? ` (${device.cpuReasons.join('; ')})` : ''}`);
  }
  for (const w of result.warnings) out(`warning: ${w.label}: tensor "${w.tensor}" has ${w.count} non-finite value(s)`);
  out(`written to ${result.outDir}`);
}

async function mergeCommand(configPath: string, outDir: string, flags: MergeFlags): Promise<void> {
  const config = readMergeConfig(configPath);
  const plan = planMerge(config, { nonFinite: flags.nonFinite });
  const bar = flags.json ? { onProgress: undefined, done: () => undefined } : terminalProgress();
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  try {
    const result = await runMerge(plan, outDir, {
      threads: parseThreads(flags.threads),
      backend: flags.backend,
      overwrite: flags.overwrite,
      maxShardBytes: flags.shardSize ? parseSize(flags.shardSize) : undefined,
      onProgress: bar.onProgress,
      signal: controller.signal,
    });
    bar.done();
    if (flags.json) console.log(JSON.stringify(result, null, 2));
    else printMergeResult(result, (line) => console.log(line));
  } finally {
    bar.done();
    process.off('SIGINT', onSignal);
  }
}

function inspectCommand(path: string, flags: { json?: boolean; hash: boolean }): void {
  const report = inspectCheckpoint(path, { hash: flags.hash });
  if (flags.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`${report.path}: ${report.layout}, ${formatCount(report.tensors.length)} tensors, ${formatCount(report.parameterCount)} parameters, ${formatBytes(report.dataBytes)} of data`);
  console.log(`dtypes: ${Object.entries(report.dtypes).map(([d, n]) => `${d} ${formatCount(n!)}`).join(', ')}`);
  if (report.metadata) console.log(`metadata: ${JSON.stringify(report.metadata)}`);
  for (const f of report.files) console.log(`file ${f.name}  ${formatBytes(f.bytes)}${f.sha256 ? `  sha256 ${f.sha256}` : ''}`);
  const width = Math.max(...report.tensors.map((t) => t.name.length), 4);
  for (const t of report.tensors) console.log(`  ${t.name.padEnd(width)}  ${t.dtype.padEnd(4)}  [${t.shape.join(', ')}]`);
}

function extractLoraCommand(base: string, finetune: string, flags: { rank: string; out: string; seed: string; overwrite?: boolean }): void {
  const rank = Number(flags.rank);
  const seed = Number(flags.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got "${flags.seed}"`);
  const result = extractLora({ base, finetune, out: flags.out, rank, seed, overwrite: flags.overwrite, log: (line) => console.log(line) });
  console.log(`wrote ${flags.out}: ${result.modules} module(s) at rank ${rank} (seed ${seed}); largest relative error ${result.worstRelativeError.toExponential(2)}`);
  if (result.saved.length > 0) console.log(`saved whole (modules_to_save): ${result.saved.join(', ')}`);
  if (result.skipped.length > 0) console.log(`not matrices, so not in the adapter (${result.skipped.length}): ${result.skipped.join(', ')}`);
}

function methodsCommand(): void {
  for (const m of MERGE_METHODS) {
    console.log(`${m.name} — ${m.prettyName} (${m.reference})${m.needsBase ? ', needs base_model' : ''}${m.stochastic ? ', seeded' : ''}`);
    const show = (scope: string, defs: typeof m.globalParameters) => {
      for (const p of defs) {
        const dflt = p.default === undefined ? 'required' : `default ${JSON.stringify(p.default)}`;
        console.log(`    ${scope} ${p.name} (${p.type}, ${dflt}): ${p.description}`);
      }
    };
    show('global', m.globalParameters);
    show('model ', m.modelParameters);
  }
}

/** Builds three tiny models, merges them with TIES, and shows the result: the quickstart's proof of life. */
async function demoCommand(flags: { dir: string }): Promise<void> {
  const root = resolve(flags.dir);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  console.log(`building a base and 2 fine-tunes under ${root} ...`);
  writeSyntheticFamily(join(root, 'models'), {
    tensors: [
      { name: 'embed.weight', shape: [512, 64] },
      { name: 'layers.0.mlp.weight', shape: [256, 64] },
      { name: 'layers.0.mlp.bias', shape: [256] },
      { name: 'layers.1.mlp.weight', shape: [64, 256] },
      { name: 'layers.1.mlp.bias', shape: [64] },
      { name: 'head.weight', shape: [10, 64] },
    ],
    fineTunes: 2,
    seed: 1,
  });
  const configPath = join(root, 'ties.yml');
  writeFileSync(
    configPath,
    [
      'merge_method: ties',
      'base_model: models/base',
      'models:',
      '  - model: models/finetune-1',
      '    parameters: { weight: 1.0, density: 0.5 }',
      '  - model: models/finetune-2',
      '    parameters: { weight: 0.5, density: 0.3 }',
      'parameters:',
      '  normalize: true',
      'dtype: bfloat16',
      '',
    ].join('\n'),
  );
  console.log(`merging with ${configPath}:`);
  await mergeCommand(configPath, join(root, 'merged'), { nonFinite: 'error', backend: defaultBackend() });
  console.log('');
  inspectCommand(join(root, 'merged'), { hash: false });
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('apl-merge')
    .description('Merge fine-tuned models: safetensors checkpoints, classic merge methods, APL')
    .showHelpAfterError()
    .exitOverride();
  const backendOption = () =>
    new Option('--backend <name>', 'where tensors are computed: webgpu (GPU), wasm or cpu; auto takes a GPU when there is one').choices([...BACKENDS]).default(process.env.APL_MERGE_BACKEND ?? 'auto');
  program
    .command('merge')
    .description('merge the checkpoints a mergekit-style YAML config names, into OUT_DIR')
    .argument('<config>', 'merge configuration (YAML; model paths relative to its directory)')
    .argument('<out_dir>', 'output directory (created; must be empty unless --overwrite)')
    .option('--threads <n>', 'worker threads (0: run inline; default: one per core)')
    .addOption(backendOption())
    .option('--overwrite', 'replace OUT_DIR if it exists')
    .option('--shard-size <size>', 'largest output shard, e.g. 5GB or 512MiB (default 5GiB)')
    .addOption(new Option('--non-finite <policy>', 'NaN/Inf in an input tensor').choices(['error', 'warn']).default('error'))
    .option('--json', 'print the result as JSON')
    .action(mergeCommand);
  program
    .command('inspect')
    .description('list a checkpoint’s tensors, dtypes, shapes, parameter count and file hashes')
    .argument('<path>', 'a .safetensors file, a directory with model.safetensors, or a sharded checkpoint')
    .option('--json', 'print the report as JSON')
    .option('--no-hash', 'skip the sha256 of each file')
    .action(inspectCommand);
  program.command('methods').description('list the merge methods and their parameters').action(methodsCommand);
  program
    .command('extract-lora')
    .description("a LoRA adapter (PEFT) of a fine-tune's changes to its base: the best rank-R approximation of each matrix's task vector")
    .argument('<base>', 'the base checkpoint')
    .argument('<finetune>', 'the fine-tune')
    .requiredOption('--rank <r>', 'rank of the adapter')
    .requiredOption('--out <dir>', 'adapter directory to write (adapter_config.json, adapter_model.safetensors)')
    .option('--seed <n>', 'seed of the randomized SVD (recorded in adapter_config.json)', '0')
    .option('--overwrite', 'replace OUT if it exists')
    .action(extractLoraCommand);
  const portOption = () => new Option('--port <n>', 'port (0: any free one)').default('4000');
  const hostOption = () => new Option('--host <host>', 'interface to listen on').default('127.0.0.1');
  const anonymousOption = () => new Option('--allow-anonymous-read', 'requests without a token may read (viewer rights); by default every request needs a token');
  const originsOption = () => new Option('--allowed-origins <origins>', "comma-separated origins (https://host:port) whose pages may call the API, besides the server's own (default: $APL_MERGE_ALLOWED_ORIGINS)");
  const zoo = program.command('zoo').description('homologous models trained from a seed, for experiments and tests');
  zoo
    .command('build')
    .description('train a base and its fine-tunes, and write their task data (probe/validation/test/ood)')
    .addOption(new Option('--suite <suite>', 'which zoo').choices(['vision', 'text', 'lm']).makeOptionMandatory())
    .option('--out <dir>', 'where to write it (default: a cache directory outside the repository)')
    .option('--quick', 'a small zoo in seconds, for tests and CI')
    .option('--seed <n>', 'seed of everything random in the build', '1')
    .addOption(backendOption())
    .action((flags: Parameters<typeof AplCommands.zooBuildCommand>[0]) => apl().zooBuildCommand(flags));
  program
    .command('importance')
    .description("APL importance of each partition of a fine-tune's task vector, on its probe data")
    .requiredOption('--base <path>', 'the base model')
    .requiredOption('--model <path>', 'the fine-tune')
    .requiredOption('--probe <file>', "task data whose probe split is used (safetensors)")
    .option('--task <name>', "the fine-tune's head to score (default: its only one)")
    .addOption(new Option('--level <level>', 'partition level').choices(['model', 'layer', 'row']).default('row'))
    .addOption(new Option('--estimator <e>', 'exact intervention, gradient approximation, or both').choices(['exact', 'gradient', 'both']).default('both'))
    .requiredOption('--out <file>', 'artifact to write (<file>.safetensors and <file>.json)')
    .addOption(backendOption())
    .action((flags: Parameters<typeof AplCommands.importanceCommand>[0]) => apl().importanceCommand(flags));
  program
    .command('logits')
    .description("a model's logits, to check parity with transformers: {\"logits\": [batch][position][vocab]} for a language model, [batch][class] for a classifier")
    .argument('<model>', 'a model directory (config.json and its checkpoint), or MODEL+ADAPTER')
    .option('--tokens <file>', 'JSON array of equal-length arrays of token ids (encoder and decoder models)')
    .option('--data <file>', 'task data (safetensors) whose examples are fed instead; the MLP takes its images this way')
    .option('--split <name>', 'the split of --data', 'test')
    .option('--count <n>', 'the first N examples of --data (default: all)')
    .option('--task <name>', 'the head to use (default: the only one; a language model has one for every task)')
    .option('--json', 'print {"logits": ...} as JSON')
    .addOption(backendOption())
    .action((model: string, flags: Parameters<typeof AplCommands.logitsCommand>[1]) => apl().logitsCommand(model, flags));
  program
    .command('bench')
    .description('merging benchmark: every method on a zoo, hyper-parameters chosen on validation, 3 seeds')
    .addOption(new Option('--suite <suite>', 'which zoo').choices(['vision', 'text', 'lm']).makeOptionMandatory())
    .requiredOption('--zoo <dir>', 'a zoo built by "apl-merge zoo build"')
    .requiredOption('--out <file>', 'report.json to write')
    .option('--seeds <list>', 'comma-separated seeds', '0,1,2')
    .option('--methods <rows>', 'only these rows, by name, separated by ";" (the oracle always; importance fidelity only if a row reads it)')
    .option('--work <dir>', 'scratch folder for merges and analyses, emptied first (default: ZOO/bench-work)')
    .option('--levels <list>', 'partition levels whose importance fidelity is measured, comma-separated (default: all, or none when no chosen row reads importance; --methods "" runs no merges)')
    .addOption(backendOption())
    .action((flags: Parameters<typeof AplCommands.benchCommand>[0]) => apl().benchCommand(flags));
  program
    .command('serve')
    .description('migrate the database at DATABASE_URL and serve the GraphQL API')
    .addOption(portOption())
    .addOption(hostOption())
    .option('--data-roots <dirs>', 'colon-separated directories models may be registered from (default: $APL_MERGE_DATA_ROOTS or ./data)')
    .option('--workers <n>', 'API processes sharing the port (Node cluster), e.g. one per core', '1')
    .addOption(anonymousOption())
    .addOption(originsOption())
    .action((flags: Parameters<typeof ServeModule.serveCommand>[0]) => (require('./serve') as typeof ServeModule).serveCommand(flags));
  program
    .command('start')
    .description('the whole platform: the database (embedded unless DATABASE_URL is set), the GraphQL API and one worker; registers a demo on first start')
    .addOption(portOption())
    .addOption(hostOption())
    .option('--data-dir <dir>', 'where the embedded database, the demo and job outputs live (a data root)', '.apl-merge')
    .option('--data-roots <dirs>', 'more colon-separated directories models may be registered from')
    .option('--no-demo', 'do not register the demo models on a first start')
    .addOption(anonymousOption())
    .addOption(originsOption())
    .action((flags: Parameters<typeof StartModule.startCommand>[0]) => (require('./start') as typeof StartModule).startCommand(flags));
  const token = program.command('token').description('API tokens (DATABASE_URL, or the embedded database of --data-dir)');
  const tokens = () => require('./token') as typeof TokenModule;
  const dataDirOption = () => new Option('--data-dir <dir>', 'the data directory of apl-merge start, when DATABASE_URL is not set').default('.apl-merge');
  token
    .command('create')
    .description('create a token and print it (on the last line); it is not shown again')
    .requiredOption('--name <name>', 'what listings, revocation and createdBy call it')
    .addOption(new Option('--role <role>', 'viewer reads; operator also starts and cancels jobs; admin also registers models and manages tokens').choices(['viewer', 'operator', 'admin']).makeOptionMandatory())
    .option('--expires <duration>', 'lifetime such as 90m, 12h, 30d or 2w (default: none)')
    .addOption(dataDirOption())
    .action((flags: Parameters<typeof TokenModule.tokenCreateCommand>[0]) => tokens().tokenCreateCommand(flags));
  token
    .command('list')
    .description('every token: name, role, prefix, created, last used, expiry, state')
    .option('--json', 'print the list as JSON')
    .addOption(dataDirOption())
    .action((flags: Parameters<typeof TokenModule.tokenListCommand>[0]) => tokens().tokenListCommand(flags));
  token
    .command('revoke')
    .description('revoke a token: its requests are refused and its subscriptions closed')
    .argument('<name>', 'the token name')
    .addOption(dataDirOption())
    .action((name: string, flags: TokenModule.TokenDatabaseFlags) => tokens().tokenRevokeCommand(name, flags));
  program
    .command('worker')
    .description('take merges and analyses off the queue at DATABASE_URL and run them (as npm run worker)')
    .option('--output-dir <dir>', 'where job outputs are written (default: $APL_MERGE_OUTPUT_DIR or ./data/outputs)')
    .option('--concurrency <n>', 'jobs run at once (default: $APL_MERGE_WORKER_CONCURRENCY or 1)')
    .action((flags: Parameters<typeof WorkerModule.workerCommand>[0]) => (require('../jobs/worker-cli') as typeof WorkerModule).workerCommand(flags));
  program
    .command('demo')
    .description('build three tiny models, merge them with TIES, and inspect the result')
    .option('--dir <dir>', 'where to put the demo files', '.cache/demo')
    .action(demoCommand);
  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

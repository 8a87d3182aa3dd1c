/**
 * Errors the engine raises for bad input. Each names the file and, where there is one, the tensor,
 * so that a user can find the problem without a debugger.
 */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
    readonly tensor?: string,
  ) {
    super(`${file}${tensor !== undefined ? `: tensor "${tensor}"` : ''}: ${reason}`);
    this.name = 'CheckpointError';
  }
}

/** Input that is well-formed but not usable together: non-homologous models, bad parameters. */
export class MergeInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeInputError';
  }
}

/** A merge configuration (YAML) that is malformed or asks for something unsupported. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${source}: ${field}: ${reason}`);
    this.name = 'ConfigError';
  }
}

export class AbortError extends Error {
  constructor(message = 'operation aborted') {
    super(message);
    this.name = 'AbortError';
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError();
}

/**
 * Lets the event loop run (timers, sockets: a cancel arriving, a queue heartbeat) before checking
 * the signal. TensorFlow.js's CPU backends compute synchronously and their reads resolve as
 * microtasks, so a long loop of them would otherwise never give way.
 */
export async function yieldThenCheckAbort(signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  throwIfAborted(signal);
}

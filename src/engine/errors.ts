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

/** Writing an output failed (disk full, quota, I/O error): names the file and the system's reason. */
export class OutputWriteError extends Error {
  constructor(
    readonly file: string,
    readonly code: string | undefined,
    reason: string,
  ) {
    super(`${file}: cannot write: ${reason}`);
    this.name = 'OutputWriteError';
  }
}

const REASONS: Record<string, string> = { ENOSPC: 'no space left on the device (ENOSPC)', EDQUOT: 'disk quota exceeded (EDQUOT)', EIO: 'input/output error (EIO)', EROFS: 'read-only file system (EROFS)', EFBIG: 'file too large for the file system (EFBIG)' };

/** Runs a write to `file`, turning a system error into an OutputWriteError naming the file. */
export function writingTo<T>(file: string, write: () => T): T {
  try {
    return write();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === undefined) throw err;
    throw new OutputWriteError(file, code, REASONS[code] ?? `${code} (${(err as Error).message})`);
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

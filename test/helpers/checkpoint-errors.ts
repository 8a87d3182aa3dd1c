/** The assertion every bad-input test of the checkpoint readers makes: a CheckpointError naming the file and, where one is at fault, the tensor. */
import { CheckpointError } from '../../src/engine/errors';

export function expectCheckpointError(fn: () => unknown, file: string, reason: RegExp, tensor?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CheckpointError);
  const error = caught as CheckpointError;
  expect({ file: error.file, tensor: error.tensor }).toEqual({ file, tensor });
  expect(error.reason).toMatch(reason);
  expect(error.message).toContain(file);
  if (tensor) expect(error.message).toContain(`"${tensor}"`);
}

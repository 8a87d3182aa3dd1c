/** Worker-thread entry: runs TensorJobs sent by the pool and transfers the result bytes back. */
import { parentPort } from 'node:worker_threads';
import { createJobContext, runTensorJob, TensorJob } from './tensor-job';

const context = createJobContext();

parentPort!.on('message', (message: { id: number; job: TensorJob } | { recycle: ArrayBuffer }) => {
  if ('recycle' in message) {
    context.buffers.give(message.recycle);
    return;
  }
  try {
    const result = runTensorJob(message.job, context);
    const buffer = result.bytes.buffer as ArrayBuffer;
    parentPort!.postMessage({ id: message.id, result }, [buffer]);
  } catch (err) {
    const error = err as Error & { file?: string; tensor?: string; reason?: string };
    parentPort!.postMessage({
      id: message.id,
      error: { name: error.name, message: error.message, file: error.file, tensor: error.tensor, reason: error.reason },
    });
  }
});

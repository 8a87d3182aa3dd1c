/** Worker-thread entry: runs TensorJobs sent by the pool and transfers the result bytes back. */
import { parentPort } from 'node:worker_threads';
import { TensorReader } from '../checkpoint/checkpoint';
import { runTensorJob, TensorJob } from './tensor-job';

const reader = new TensorReader();

parentPort!.on('message', (message: { id: number; job: TensorJob } | { close: true }) => {
  if ('close' in message) {
    reader.close();
    parentPort!.close();
    return;
  }
  try {
    const result = runTensorJob(message.job, reader);
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

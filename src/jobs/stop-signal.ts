/** Resolves at the first SIGINT or SIGTERM. Call it before starting anything, so no signal is missed. */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
}

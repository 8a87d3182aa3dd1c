/**
 * Resolves at the first SIGINT or SIGTERM. Call it before starting anything, so no signal is missed.
 * The handlers stay installed: a second signal while shutting down (a terminal sends SIGINT to the
 * whole process group, children included) must not kill the process before it has stopped what it started.
 */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((done) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) return;
      received = true;
      done(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

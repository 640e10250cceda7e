/**
 * Preloaded into every child of run.ts (`node --import tsx --import
 * exit-with-parent.ts ...`), which opens an IPC channel to each: when run.ts
 * dies without stopping its children (kill -9), the channel closes and the
 * child gets SIGTERM, so it drains and exits instead of running on as an orphan.
 */
if (process.channel !== undefined) {
  // The channel is only a tripwire: it must not keep the process alive.
  process.channel.unref()
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'))
}

/** Waiting in tests: for a while, or until something is so. */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface WaitOptions {
  /** default 10 s */
  timeoutMs?: number;
  /** default 25 ms */
  pollMs?: number;
  /** the state of things, for the error when the time is up */
  describe?: () => string | Promise<string>;
}

/** Polls `probe` until it returns something other than undefined, and returns that; throws when time is up. */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const state = options.describe === undefined ? '' : `: ${await options.describe()}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state}`);
    }
    await sleep(options.pollMs ?? 25);
  }
}

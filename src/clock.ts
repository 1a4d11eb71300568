/**
 * Time. Deadlines and bounds are measured on the monotonic clock (process.hrtime, which needs no module
 * load, unlike performance.now()): a step of the wall clock (NTP, an admin, a VM resumed from a
 * snapshot) neither shortens nor lengthens them. Date.now() is for timestamps shown or stored only.
 */

/** A clock that only moves forward, in milliseconds from an arbitrary origin. */
export interface Clock {
  now(): number;
}

export const monotonic: Clock = {
  now: () => Number(process.hrtime.bigint()) / 1e6,
};

/** A moment `ms` from now (or from `from`) on a clock, and how far away it is. */
export class Deadline {
  readonly at: number;

  constructor(
    ms: number,
    private readonly clock: Clock = monotonic,
    from: number = clock.now(),
  ) {
    this.at = from + ms;
  }

  remainingMs(): number {
    return Math.max(0, this.at - this.clock.now());
  }

  passed(): boolean {
    return this.clock.now() >= this.at;
  }
}

/** Time: waiting (Node's timers run on the monotonic clock). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

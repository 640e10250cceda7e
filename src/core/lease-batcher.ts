import type { LeaseRef } from './types.ts'

/**
 * Gathers calls made in the same turn of the event loop into one driver
 * call: a hundred handlers finishing together send one ack of a hundred
 * refs (one journal write, one frame on the wire), not a hundred.
 */
export class LeaseBatcher<A extends unknown[]> {
  private pending: { ref: LeaseRef; args: A; resolve: (ok: boolean) => void; reject: (err: unknown) => void }[] = []
  private scheduled = false

  constructor(
    private readonly send: (refs: readonly LeaseRef[], ...args: A) => Promise<boolean[]>,
    /** Calls whose extra arguments differ are sent separately; this says whether two match. */
    private readonly sameArgs: (a: A, b: A) => boolean = () => true,
  ) {}

  call(ref: LeaseRef, ...args: A): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ ref, args, resolve, reject })
      if (!this.scheduled) {
        this.scheduled = true
        queueMicrotask(() => this.flush())
      }
    })
  }

  private flush(): void {
    this.scheduled = false
    let rest = this.pending
    this.pending = []
    while (rest.length > 0) {
      const head = rest[0]!
      const group = rest.filter((p) => this.sameArgs(p.args, head.args))
      rest = rest.filter((p) => !this.sameArgs(p.args, head.args))
      this.send(
        group.map((p) => p.ref),
        ...head.args,
      ).then(
        (results) => group.forEach((p, i) => p.resolve(results[i] ?? false)),
        (err: unknown) => group.forEach((p) => p.reject(err)),
      )
    }
  }
}

import type { TestContext } from 'node:test'

const stacks = new WeakMap<TestContext, (() => unknown)[]>()

/**
 * Runs `fn` when the test ends, last registered first (node's `t.after` runs
 * first registered first, which would remove a temp directory before the
 * engine writing into it is closed).
 */
export function cleanup(t: TestContext, fn: () => unknown): void {
  let stack = stacks.get(t)
  if (stack === undefined) {
    const fns: (() => unknown)[] = []
    stack = fns
    stacks.set(t, fns)
    t.after(async () => {
      for (const f of fns.reverse()) await f()
    })
  }
  stack.push(fn)
}

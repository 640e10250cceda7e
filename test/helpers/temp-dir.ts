import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { cleanup } from './cleanup.ts'

/** A fresh temp directory, removed when the test ends. */
export async function tempDir(t: TestContext, prefix = 'sluice-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  cleanup(t, () => rm(dir, { recursive: true, force: true }))
  return dir
}

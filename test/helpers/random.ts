export { seededRandom } from '../../src/core/conformance/helpers.ts'

/** The seed of this run: `SLUICE_SEED` to replay one, else a fresh one. */
export function runSeed(): number {
  const fromEnv = process.env['SLUICE_SEED']
  return fromEnv === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(fromEnv)
}

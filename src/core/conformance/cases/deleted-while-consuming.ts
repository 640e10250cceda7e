import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCode, SluiceError } from '../../errors.ts'
import type { ConformanceTarget } from '../target.ts'
import { eventually, turns, uniqueName } from '../helpers.ts'

/** A consumer whose subscription or topic is deleted under it is told at once, never left silently idle. */
export function deletedWhileConsumingCases(target: ConformanceTarget): void {
  for (const what of ['subscription', 'topic', 'topic, then created again'] as const) {
    test(`a consumer whose ${what} is deleted closes and reports CLOSED`, async (t) => {
      const instance = await target.open(t)
      const topic = uniqueName('deleted')
      await instance.sluice.createTopic(topic)
      const consumerSide = await instance.connect()
      let handled = 0
      const handlerSub = await consumerSide.subscribe(topic, 'handler', () => {
        handled++
      })
      const loopSub = await consumerSide.subscribe(topic, 'loop')
      // What the loop ends with, caught at once (the rejection comes before the test looks at it).
      const loopEnd = (async () => {
        for await (const m of loopSub) await m.ack()
      })().then(
        () => null,
        (err: unknown) => err,
      )
      await instance.sluice.publish(topic, 'before')
      await eventually('the first message', () => handled === 1)
      if (what === 'subscription') {
        await instance.sluice.deleteSubscription(topic, 'handler')
        await instance.sluice.deleteSubscription(topic, 'loop')
      } else {
        await instance.sluice.deleteTopic(topic)
        if (what === 'topic, then created again') await instance.sluice.createTopic(topic)
      }
      const err = await loopEnd
      assert.ok(err instanceof SluiceError, `the loop ended with ${String(err)}, not CLOSED`)
      assert.equal(err.code, ErrorCode.Closed, err.message)
      await eventually('the handler subscription to close', () => handlerSub.closed)
      if (what === 'topic, then created again') {
        await instance.sluice.publish(topic, 'after')
        await turns(50)
        assert.equal(handled, 1, 'a closed subscription handled a message of the new topic')
      }
    })
  }
}

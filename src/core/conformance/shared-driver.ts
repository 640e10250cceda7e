import type { Driver } from '../driver.ts'

/**
 * A view of a driver: every call goes to it, except what `overrides` gives
 * (what it declares, what closing does).
 */
export function driverView(driver: Driver, overrides: Partial<Pick<Driver, 'capabilities' | 'close'>> = {}): Driver {
  return {
    capabilities: overrides.capabilities ?? driver.capabilities,
    createTopic: (name, config) => driver.createTopic(name, config),
    describeTopic: (name) => driver.describeTopic(name),
    listTopics: () => driver.listTopics(),
    deleteTopic: (name) => driver.deleteTopic(name),
    append: (topic, records, options) => driver.append(topic, records, options),
    read: (topic, partition, from, max) => driver.read(topic, partition, from, max),
    openConsumer: (topic, subscription, config) => driver.openConsumer(topic, subscription, config),
    peek: (topic, subscription, max) => driver.peek(topic, subscription, max),
    deleteSubscription: (topic, subscription) => driver.deleteSubscription(topic, subscription),
    redrive: (topic, options, signal) => driver.redrive(topic, options, signal),
    stats: (topic, options) => driver.stats(topic, options),
    close: overrides.close ?? (() => driver.close()),
  }
}

/**
 * A view of a driver whose close() leaves the driver open: lets several
 * `Sluice` clients share one in-process engine, each closing only itself.
 */
export function sharedDriver(driver: Driver): Driver {
  return driverView(driver, { close: () => Promise.resolve() })
}

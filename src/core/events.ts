/**
 * Typed events: `area.event` names, listeners per name. Emitting with no
 * listener does nothing (and builds nothing: pass a function for the payload).
 */
export class Events<Map extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Map, Set<(payload: never) => void>>()

  on<K extends keyof Map>(event: K, listener: (payload: Map[K]) => void): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(event, set)
    }
    set.add(listener)
    return () => set.delete(listener)
  }

  has(event: keyof Map): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0
  }

  emit<K extends keyof Map>(event: K, payload: () => Map[K]): void {
    const set = this.listeners.get(event)
    if (set === undefined || set.size === 0) return
    const value = payload()
    for (const listener of set) (listener as (payload: Map[K]) => void)(value)
  }
}

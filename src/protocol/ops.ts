/** The requests a client sends (frame kind REQUEST, body [op, args]); each answered by one RESPONSE. */
export const Op = {
  CreateTopic: 'createTopic',
  DescribeTopic: 'describeTopic',
  ListTopics: 'listTopics',
  DeleteTopic: 'deleteTopic',
  Append: 'append',
  Read: 'read',
  OpenConsumer: 'openConsumer',
  CloseConsumer: 'closeConsumer',
  Ack: 'ack',
  Nack: 'nack',
  Extend: 'extend',
  Release: 'release',
  Commit: 'commit',
  Peek: 'peek',
  DeleteSubscription: 'deleteSubscription',
  Stats: 'stats',
  /** Stops the wait of an earlier APPEND or REDRIVE on this connection (args: { request: its id }); an append fails with ABORTED unless already stored, a redrive answers what it moved. */
  Cancel: 'cancel',
  /**
   * Moves dead letters back (args: { topic, options: { to?, ratePerSecond?, max?, deadLetterTopic? } }), run
   * by the broker; answered with { moved } once done. A CANCEL of it, or the connection dropping, stops it
   * between moves. Not retriable: a repeat would be a second redrive.
   */
  Redrive: 'redrive',
} as const
export type Op = (typeof Op)[keyof typeof Op]

const ops = new Set<string>(Object.values(Op))

export function isOp(value: unknown): value is Op {
  return typeof value === 'string' && ops.has(value)
}

/** Requests that may be sent again after a lost connection without changing their outcome. */
export const retriableOps: ReadonlySet<Op> = new Set<Op>([
  Op.CreateTopic,
  Op.DescribeTopic,
  Op.ListTopics,
  Op.Append, // carries a producer id and sequences: a repeat is recognised, not stored twice
  Op.Read,
  Op.Peek,
  Op.Stats,
  Op.Commit, // carries a transaction id: a repeat gets the first outcome
])

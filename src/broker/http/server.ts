import Fastify, { type FastifyInstance } from 'fastify'

/** What the HTTP API asks of the broker around it. */
export interface HttpHost {
  /** False while draining for shutdown. */
  isReady(): boolean
  /** Checks behind /readyz?verbose. */
  checks(): { name: string; ok: boolean; detail?: string }[]
}

/**
 * The broker's HTTP side: `/livez` and `/healthz` (the process answers),
 * `/readyz` (storage open, not draining; 503 otherwise; `?verbose` lists the
 * checks, as the Kubernetes API does).
 */
export function createHttpServer(host: HttpHost): FastifyInstance {
  const app = Fastify({ logger: false })
  const live = { status: 'ok' }
  app.get('/livez', () => live)
  app.get('/healthz', () => live)
  app.get<{ Querystring: { verbose?: string } }>('/readyz', (request, reply) => {
    const checks = host.checks()
    const ok = host.isReady() && checks.every((c) => c.ok)
    // Not awaited: awaiting a fastify reply waits for the response to be sent.
    void reply.code(ok ? 200 : 503)
    if (request.query.verbose !== undefined) return { status: ok ? 'ok' : 'unavailable', checks }
    return { status: ok ? 'ok' : 'unavailable' }
  })
  return app
}

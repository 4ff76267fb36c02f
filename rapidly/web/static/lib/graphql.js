// A client of Rapidly's public GraphQL API, as any website could write it: JSON over `fetch`,
// multipart uploads with progress, and subscriptions over graphql-transport-ws. No cookies: the
// token is a bearer token, sent by the page that holds it.

/** How long after a subscription is sent the server has surely taken it (it answers nothing). */
const READY_MS = 250

/** The spec's own media type first (README). */
export const ACCEPT = 'application/graphql-response+json, application/json;q=0.9'

/** A failure that a retry may cure: the network, a 5xx, `UNAVAILABLE`, a rate limit. */
export class Unavailable extends Error {
  constructor (retryAfterSeconds = 0) {
    super('unavailable')
    this.retryable = true
    this.retryAfter = retryAfterSeconds
  }
}

/** The request was refused and would be again (e.g. `OriginNotAllowed`): `code` says why, and for
 *  invalid input `errors` says which input, how (`{ field, code, message }`). */
export class Refused extends Error {
  constructor (message, code, errors = []) {
    super(message)
    this.code = code
    this.errors = errors
  }
}

/** Selections of a mutation result's failure members, for `outcome`: every result has `FAILED`; add
 *  `INVALID` and `LIMITED` where its union has those members. */
export const FAILED = '__typename ... on Error { message }'
export const INVALID = '... on InputInvalidError { errors { field code message } }'
export const LIMITED = '... on RateLimitedError { retryAfterSeconds }'

/** A mutation's result (its one root field): the `success` member, or `{ invalid: errors }` for
 *  `InputInvalidError`; a rate limit throws `Unavailable`, any other member `Refused` (its
 *  `code` is the member's name, e.g. `AuthError`). */
export function outcome (data, success) {
  const result = Object.values(data)[0]
  if (result.__typename === success) return result
  if (result.__typename === 'InputInvalidError') return { invalid: result.errors }
  if (result.__typename === 'RateLimitedError') throw new Unavailable(result.retryAfterSeconds)
  throw new Refused(result.message, result.__typename)
}

/** The `data` of an answer; throws `Unavailable` for a 5xx (`retryAfter` from its header, in
 *  seconds) or `UNAVAILABLE`, `Refused` for any other error. */
function answer (status, body, retryAfter) {
  const seconds = Math.min(Number(retryAfter) || 0, 300)
  if (status >= 500 || body === null || typeof body !== 'object') throw new Unavailable(seconds)
  const error = body.errors?.[0]
  if (error) {
    const code = error.extensions?.code
    if (code === 'UNAVAILABLE') throw new Unavailable(error.extensions.retryAfterSeconds ?? seconds)
    throw new Refused(error.message, code, error.extensions?.errors)
  }
  return body.data
}

export class Api {
  constructor (endpoint) {
    this.endpoint = new URL(endpoint)
    this.socketUrl = this.endpoint.href.replace(/^http/, 'ws')
  }

  /** A mutation's `outcome`. */
  async mutate (query, variables, token, success) {
    return outcome(await this.call(query, variables, token), success)
  }

  /** The operation's `data`; throws `Unavailable` or `Refused`. */
  async call (query, variables = {}, token = null) {
    const headers = { 'Content-Type': 'application/json', Accept: ACCEPT }
    if (token) headers.Authorization = `Bearer ${token}`
    let response
    try {
      response = await fetch(this.endpoint, {
        method: 'POST', headers, body: JSON.stringify({ query, variables }), credentials: 'omit', cache: 'no-store'
      })
    } catch {
      throw new Unavailable()
    }
    const body = await response.json().catch(() => null)
    return answer(response.status, body, response.headers.get('Retry-After'))
  }

  /** A GraphQL multipart request with one file at `variables[name]`; `progress(fraction)` as it goes. */
  upload (query, variables, name, file, token, progress = () => {}) {
    const form = new FormData()
    form.append('operations', JSON.stringify({ query, variables: { ...variables, [name]: null } }))
    form.append('map', JSON.stringify({ 0: [`variables.${name}`] }))
    form.append('0', file, 'upload')
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest()
      request.open('POST', this.endpoint)
      request.setRequestHeader('Rapidly-Upload', '1')
      request.setRequestHeader('Accept', ACCEPT)
      if (token) request.setRequestHeader('Authorization', `Bearer ${token}`)
      request.responseType = 'json'
      request.upload.onprogress = (event) => event.lengthComputable && progress(event.loaded / event.total)
      request.onerror = request.ontimeout = () => reject(new Unavailable())
      request.onload = () => {
        try {
          resolve(answer(request.status, request.response, request.getResponseHeader('Retry-After')))
        } catch (error) { reject(error) }
      }
      request.send(form)
    })
  }

  /** Subscribe until `close()`. Whatever ends the stream (the network, a server restart, the server
   *  completing it: too many events unread, the database away) is followed by a new connection, with
   *  backoff; only a refused credential ends it for good, with `onEnd(code)`. Each connection calls
   *  `onReady()` once its subscription has surely been taken (the protocol confirms nothing), so that
   *  the caller can read what it may have missed before then: a page opened, a network back. */
  subscribe (query, token, { onNext, onEnd = () => {}, onReady = () => {} }) {
    let socket; let closed = false; let attempt = 0; let timer
    const open = () => {
      const current = socket = new WebSocket(this.socketUrl, 'graphql-transport-ws')
      const send = (message) => socket.send(JSON.stringify(message))
      socket.onopen = () => send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })
      socket.onmessage = (message) => {
        let data
        try { data = JSON.parse(message.data) } catch { return }
        if (data.type === 'connection_ack') {
          send({ id: '1', type: 'subscribe', payload: { query } })
          attempt = 0
          setTimeout(() => !closed && socket === current && current.readyState === WebSocket.OPEN && onReady(), READY_MS)
        } else if (data.type === 'ping') send({ type: 'pong' })
        else if (data.type === 'next') onNext(data.payload?.data)
        else if (data.type === 'complete' || data.type === 'error') socket.close(1000)
      }
      socket.onclose = (event) => {
        if (closed) return
        if (event.code === 4403 || event.code === 4400) { closed = true; onEnd(event.code); return }
        attempt += 1
        timer = setTimeout(open, Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2))
      }
    }
    open()
    return { close () { closed = true; clearTimeout(timer); socket?.close(1000) } }
  }
}

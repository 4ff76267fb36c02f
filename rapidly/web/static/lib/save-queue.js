// Autosave that never loses a keystroke. Each field's latest value is sent after a pause in typing;
// at most one save per field is in flight, so saves arrive in order and the last write wins; a save
// that fails for a reason a retry may cure (`error.retryable`) is tried again with backoff, with the
// value typed by then. Values live in memory only, never in the browser's storage.
//
// `save(key, value)` resolves to `{ invalid: [errors] }` when the server refused the value, to
// anything else once it is stored, and rejects when it could not save.
// Each change of a field's state is a `state` event: `{ key, state, errors }`, with state one of
// waiting (typed, not sent yet), saving, saved, invalid, retrying, failed (refused for good).

export class SaveQueue extends EventTarget {
  constructor (save, { delay = 400, retryBase = 1000, retryMax = 30_000, random = Math.random } = {}) {
    super()
    Object.assign(this, { save, delay, retryBase, retryMax, random })
    this.fields = new Map()
  }

  /** The user typed `value` into `key`; `now` skips the pause (a click, a choice). The value the
   *  field already holds is not sent again (but `now` still ends its pause). */
  set (key, value, { now = false } = {}) {
    const field = this.#field(key)
    if (field.version > 0 && field.state !== 'failed' && JSON.stringify(value) === JSON.stringify(field.value)) {
      if (now && field.state === 'waiting') { clearTimeout(field.timer); this.#send(key) }
      return
    }
    field.value = value
    field.version += 1
    if (field.inFlight || field.state === 'retrying') return // sent when that save ends, or at the retry
    clearTimeout(field.timer)
    field.timer = setTimeout(() => this.#send(key), now ? 0 : this.delay)
    this.#emit(key, 'waiting')
  }

  /** Send every value waiting for its pause now (the page is being hidden, "Done" was pressed). */
  flush () {
    for (const [key, field] of this.fields) {
      if (field.timer && field.state === 'waiting') { clearTimeout(field.timer); this.#send(key) }
    }
  }

  /** Retry every failing save now (the browser says it is online again). */
  retryNow () {
    for (const [key, field] of this.fields) {
      if (field.state === 'retrying' && !field.inFlight) { clearTimeout(field.timer); this.#send(key) }
    }
  }

  /** True while a typed value is not yet stored: waiting, in flight, being retried, or refused for
   *  a reason other than the value (it is still only in the page). */
  get unsaved () {
    for (const field of this.fields.values()) if (field.done < field.version || field.state === 'failed') return true
    return false
  }

  state (key) { return this.fields.get(key)?.state ?? 'idle' }

  /** Forget everything (the contact was erased); nothing pending is sent any more. */
  clear () {
    for (const field of this.fields.values()) clearTimeout(field.timer)
    this.fields.clear()
  }

  #field (key) {
    if (!this.fields.has(key)) {
      this.fields.set(key, { value: undefined, version: 0, done: 0, inFlight: false, timer: null, attempt: 0, state: 'idle' })
    }
    return this.fields.get(key)
  }

  async #send (key) {
    const field = this.fields.get(key)
    if (!field || field.inFlight) return
    field.timer = null
    const { version, value } = field
    field.inFlight = true
    this.#emit(key, 'saving')
    let state; let errors = null; let retryAfter = 0
    try {
      const result = await this.save(key, value)
      errors = result?.invalid ?? null
      state = errors ? 'invalid' : 'saved'
      field.attempt = 0
    } catch (error) {
      state = error?.retryable ? 'retrying' : 'failed'
      retryAfter = error?.retryAfter || 0
      errors = state === 'failed' ? [{ field: key, code: error?.code ?? 'failed', message: error?.message ?? '' }] : null
    } finally {
      field.inFlight = false
    }
    if (this.fields.get(key) !== field) return // cleared meanwhile
    if (state === 'retrying') {
      field.attempt += 1
      const backoff = Math.min(this.retryMax, this.retryBase * 2 ** (field.attempt - 1)) * (0.5 + this.random() / 2)
      field.timer = setTimeout(() => this.#send(key), Math.max(backoff, 1000 * retryAfter))
      this.#emit(key, 'retrying')
      return
    }
    field.done = version
    if (field.version > version) { this.#send(key); return } // typed meanwhile: the latest goes now
    this.#emit(key, state, errors)
  }

  #emit (key, state, errors = null) {
    const field = this.fields.get(key)
    if (field.state === state && !errors) return // typing on while waiting: nothing new to show
    field.state = state
    this.dispatchEvent(new CustomEvent('state', { detail: { key, state, errors } }))
  }
}

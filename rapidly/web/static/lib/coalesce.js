// Reading again what changed, for a burst of live events: the first event is read at once, then at
// most one read every `every` ms, and never two at a time; an event that arrives meanwhile is
// answered by the next read, so the last state is always shown. A staff member watching a contact
// being typed into reads it about once a second, not once per save (issue 28): twenty of them make
// twenty reads a second, not twenty per keystroke. Each read is a staff member's own (reads are
// audited per person), so it cannot be shared between them.
//
// `poke(what)` notes an event; `read(whats)` gets the set of what was poked since the last read.

export class Coalesced {
  #read; #every; #now; #pending = new Set(); #busy = false; #last = -Infinity; #timer = null; #closed = false

  constructor (read, { every = 1000, now = () => performance.now() } = {}) {
    this.#read = read
    this.#every = every
    this.#now = now
  }

  poke (what = true) {
    if (this.#closed) return
    this.#pending.add(what)
    this.#schedule()
  }

  close () {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = null
  }

  #schedule () {
    if (this.#busy || this.#timer !== null || !this.#pending.size || this.#closed) return
    const wait = this.#last + this.#every - this.#now()
    if (wait > 0) {
      this.#timer = setTimeout(() => { this.#timer = null; this.#schedule() }, wait)
      return
    }
    this.#run()
  }

  async #run () {
    const whats = this.#pending
    this.#pending = new Set()
    this.#busy = true
    this.#last = this.#now()
    try { await this.#read(whats) } catch {} finally { this.#busy = false }
    this.#schedule()
  }
}

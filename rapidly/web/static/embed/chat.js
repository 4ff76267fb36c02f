// The form's conversation with the company: `me { chatMessages }`, `sendChatMessage`, `markChatRead`.
// Loaded by form.js right after the fields are shown. Message bodies are text, always.

import { el } from '../lib/dom.js'
import { FAILED, INVALID, LIMITED } from '../lib/graphql.js'
import { fill } from '../lib/i18n.js'

const MESSAGE = 'id body author createdAt'
const CHAT = `query Chat($after: String) { me { chatMessages(first: 50, after: $after) {
  edges { node { ${MESSAGE} } } pageInfo { hasNextPage endCursor } } } }`
const SEND = `mutation SendChat($body: String!) { sendChatMessage(body: $body) {
  ... on ChatMessageSent { chatMessage { ${MESSAGE} } } ${INVALID} ${LIMITED} ${FAILED} } }`
const READ = 'mutation ReadChat { markChatRead }'

export class Chat {
  #seen = new Set(); #cursor = null

  /** `form` is what the panel needs of the form: see `RapidlyForm#session`. */
  constructor (form) {
    const { t, company } = (this.form = form)
    this.list = el('ol', { class: 'chat', tabindex: 0, 'aria-labelledby': 'rapidly-chat' })
    this.input = el('textarea', { id: 'rapidly-chat-input', rows: 2, maxlength: 4000 })
    this.error = el('p', { class: 'error', role: 'alert' })
    const send = (event) => { event.preventDefault(); this.send() }
    this.view = el('section', { class: 'chat-panel', 'aria-labelledby': 'rapidly-chat' },
      el('h3', { id: 'rapidly-chat' }, fill(t.chatHeading, { company })),
      this.list,
      el('form', { onsubmit: send },
        el('label', { for: 'rapidly-chat-input' }, t.chatLabel), this.input, this.error,
        el('button', { type: 'submit' }, t.send)))
  }

  /** A message as a list item; null for one shown already. */
  #item ({ id, body, author, createdAt }) {
    if (this.#seen.has(id)) return null
    this.#seen.add(id)
    const mine = author === 'CONTACT'
    return el('li', { class: mine ? 'mine' : 'theirs' },
      el('span', { class: 'who' }, mine ? this.form.t.you : this.form.company, ' ',
        el('time', { datetime: createdAt }, this.form.clock(createdAt))),
      el('span', { class: 'body' }, body))
  }

  /** The messages after the last one shown; the company's are announced and marked read. */
  async load () {
    const { api, token, t, company } = this.form
    let theirs = 0
    for (let more = Boolean(token()); more;) {
      const page = (await api.call(CHAT, { after: this.#cursor }, token())).me?.chatMessages
      if (!page) return
      for (const { node } of page.edges) {
        const item = this.#item(node)
        if (item) this.list.append(item)
        theirs += Boolean(item) && node.author === 'STAFF'
      }
      this.#cursor = page.pageInfo.endCursor ?? this.#cursor
      more = page.pageInfo.hasNextPage
    }
    if (!theirs) return
    this.form.announce(fill(t.newMessage, { company }))
    await api.call(READ, {}, token())
  }

  async send () {
    const body = this.input.value.trim()
    if (!body) return
    this.error.textContent = ''
    try {
      const sent = await this.form.api.mutate(SEND, { body }, await this.form.contact(), 'ChatMessageSent')
      if (sent.invalid) return void (this.error.textContent = this.form.explain(sent.invalid[0]))
      const item = this.#item(sent.chatMessage)
      if (item) this.list.append(item)
      this.input.value = ''
    } catch (error) {
      this.error.textContent = this.form.explain(error)
    }
  }
}

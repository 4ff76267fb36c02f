// The contacts' screens: the list, live as customers type, and one contact's page.

import { Coalesced } from '../lib/coalesce.js'
import { el } from '../lib/dom.js'
import { FAILED, INVALID, LIMITED } from '../lib/graphql.js'
import { fill } from '../lib/i18n.js'
import { confirmed, frame } from './frame.js'

const TYPING_MS = 10_000
// How often the list reads again the name of a contact that keeps changing: the event says when, not
// what, and each read of a contact is audited, so not on every keystroke.
const NAME_EVERY_MS = 10_000

const SUMMARY = 'id displayName updatedAt'
const CONTACTS = `query Contacts($after: String, $search: String) { contacts(first: 20, after: $after, search: $search) {
  edges { node { ${SUMMARY} } } pageInfo { hasNextPage endCursor } } }`
const ONE = `query One($id: ID!) { contact(id: $id) { ${SUMMARY} } }`
const CONTACT = `query Contact($id: ID!) { contact(id: $id) { ${SUMMARY} values { key value updatedAt }
  media { id fieldKey url } messages { id event channel status maskedRecipient createdAt } } }`
const MESSAGE = 'id body author createdAt'
const CHAT = `query Chat($id: ID!, $after: String) { chatMessages(contactId: $id, first: 50, after: $after) {
  edges { node { ${MESSAGE} } } pageInfo { hasNextPage endCursor } } }`
const SEND = `mutation Send($id: ID!, $body: String!) { sendChatMessage(contactId: $id, body: $body) {
  ... on ChatMessageSent { chatMessage { ${MESSAGE} } } ${INVALID} ${LIMITED} ${FAILED} } }`
const READ_CHAT = 'mutation ReadChat($id: ID!) { markChatRead(contactId: $id) }'
const ASK_PHOTO = `mutation AskPhoto($id: ID!, $channel: Channel!) { requestPhoto(contactId: $id, channel: $channel) {
  ... on PhotoRequested { channel } ${INVALID} ${LIMITED} ${FAILED} } }`
const ERASE = `mutation Erase($id: ID!, $locale: String) { deleteContact(id: $id) {
  ... on ErasureReceipt { erasedAt complete removed { store count name(locale: $locale) } } ${FAILED} } }`

export class ContactList {
  #items = new Map(); #shown = new Map(); #after = null; #search = ''; #generation = 0
  #typing = new Map(); #timers = new Map(); #reading = new Set(); #erased = new Set()

  constructor (app) {
    const t = (this.app = app).t
    this.title = t.contacts
    const { element, note } = frame(t.contacts)
    this.element = element
    this.note = note
    const input = el('input', { id: 'search', type: 'search', 'aria-describedby': 'search-help', autocomplete: 'off' })
    const search = (event) => {
      event.preventDefault()
      this.#search = input.value.trim()
      this.#restart()
      this.load().then(() => app.announce(fill(t.found, { count: this.#items.size })), (error) => this.problem(app.explain(error)))
    }
    this.list = el('ul', { class: 'contacts' })
    this.empty = el('p', { class: 'quiet' })
    this.more = el('button', { type: 'button', hidden: true, onclick: () => this.load().catch((error) => this.problem(app.explain(error))) }, t.loadMore)
    element.append(
      el('form', { class: 'search', role: 'search', onsubmit: search },
        el('label', { for: 'search' }, t.search), input,
        el('p', { id: 'search-help', class: 'quiet' }, t.searchHelp),
        el('button', { type: 'submit' }, t.search)),
      this.list, this.empty, this.more)
  }

  problem (text) { this.note.textContent = text }
  close () { this.closed = true }

  #restart () {
    this.#generation += 1
    this.#after = null
    this.list.replaceChildren()
    this.#items.clear()
  }

  /** The next page (the first, after a search or a restart). A page of an older search is dropped. */
  async load () {
    const t = this.app.t
    const generation = this.#generation
    this.note.textContent = ''
    const data = await this.app.call(CONTACTS, { after: this.#after, search: this.#search || null })
    if (generation !== this.#generation || this.closed) return
    for (const { node } of data.contacts.edges) this.#put(node, 'end')
    this.#after = data.contacts.pageInfo.endCursor
    this.more.hidden = !data.contacts.pageInfo.hasNextPage
    this.empty.textContent = this.#items.size ? '' : this.#search ? t.noMatches : t.noContacts
  }

  /** After a reconnection: the first page again, merged in (what is shown stays where it is). One
   *  asked for before a new search is dropped, as `load`'s is: it would merge the old list into its result. */
  async refresh () {
    const generation = this.#generation
    const data = await this.app.call(CONTACTS, { after: null, search: this.#search || null })
    if (generation !== this.#generation || this.closed) return
    for (const { node } of [...data.contacts.edges].reverse()) this.#put(node, this.#items.has(node.id) ? 'here' : 'top')
  }

  /** Show a contact (`id`, `displayName`, `updatedAt`): at the top (just active), at the end (a page
   *  read), or where it is (its name read again). An item shown is updated in place, and moved only
   *  if it must, so that a keyboard's focus on it stays. */
  #put (contact, where) {
    if (this.#erased.has(contact.id)) return
    const t = this.app.t
    let item = this.#items.get(contact.id)
    if (!item) {
      item = el('li', { 'data-id': contact.id },
        el('a', { href: `#/contacts/${encodeURIComponent(contact.id)}` },
          el('span', { class: 'name' }), el('span', { class: 'quiet' }), el('span', { class: 'active' }, t.typing)))
      this.#items.set(contact.id, item)
    }
    this.#shown.set(contact.id, contact)
    const [name, when] = item.querySelectorAll('.name, .quiet')
    name.textContent = contact.displayName || t.unnamed
    when.textContent = fill(t.lastActive, { time: this.app.when(contact.updatedAt) })
    item.classList.toggle('typing', Date.now() - (this.#typing.get(contact.id) || 0) < TYPING_MS)
    const focused = item.contains(document.activeElement)
    if (where === 'top' && this.list.firstElementChild !== item) this.list.prepend(item)
    else if (where === 'end' && !item.isConnected) this.list.append(item)
    if (focused && !item.contains(document.activeElement)) item.querySelector('a').focus()
    this.empty.textContent = ''
  }

  /** An event moves its contact to the top at once, from what it says (when); the contact's name,
   *  which the event does not carry, is read again at most every NAME_EVERY_MS per contact. */
  onEvent (kind, id, at) {
    if (kind === 'DELETED') {
      this.#erased.add(id)
      this.#items.get(id)?.remove()
      this.#items.delete(id)
      return
    }
    const listed = this.#items.has(id)
    if (this.#search && !listed) return // a search shows what matched when it was made
    if (kind === 'FIELD_SAVED') {
      this.#typing.set(id, Date.now())
      clearTimeout(this.#timers.get(id))
      this.#timers.set(id, setTimeout(() => this.#items.get(id)?.classList.remove('typing'), TYPING_MS))
    }
    if (listed) this.#put({ ...this.#shown.get(id), updatedAt: at || this.#shown.get(id).updatedAt }, 'top')
    this.#read(id, listed ? NAME_EVERY_MS : 0)
  }

  #read (id, after) {
    if (this.#reading.has(id)) return
    this.#reading.add(id)
    setTimeout(async () => {
      const contact = (await this.app.call(ONE, { id }).catch(() => null))?.contact
      this.#reading.delete(id)
      if (!contact || this.closed) return
      if (this.#items.has(id)) this.#put(contact, 'here')
      else if (!this.#search) {
        this.#put(contact, 'top')
        this.app.announce(fill(this.app.t.arrived, { name: contact.displayName || this.app.t.unnamed }))
      }
    }, after)
  }
}

export class ContactPage {
  #seen = new Set(); #chatAfter = null; #erased = false
  /** Events answered by reading again, at most once a second: only the chat when only it changed. */
  #reads = new Coalesced((kinds) => kinds.size === 1 && kinds.has('CHAT_MESSAGE') ? this.#loadChat() : this.load())

  constructor (app, id) {
    const t = (this.app = app).t
    this.id = id
    this.title = t.contact
    const { element, heading, note } = frame(t.contact)
    Object.assign(this, { element, heading, note })
    this.answers = el('dl', { class: 'answers' })
    this.photos = el('ul', { class: 'photos' })
    this.sent = el('ul', { class: 'sent' })
    this.chat = el('ol', { class: 'chat', 'aria-live': 'polite', tabindex: 0, 'aria-labelledby': 'chat-heading' })
    this.body = el('textarea', { id: 'chat-input', rows: 3, maxlength: 4000 })
    this.chatNote = el('p', { class: 'error', role: 'alert' })
    this.askNote = el('p', { class: 'note', role: 'status' })
    const channel = el('select', { id: 'ask-channel' },
      el('option', { value: 'SMS' }, t.sms), el('option', { value: 'EMAIL' }, t.email_))
    const section = (id, title, ...children) => el('section', { 'aria-labelledby': id }, el('h2', { id }, title), ...children)
    const send = (event) => { event.preventDefault(); this.#send() }
    element.append(
      el('p', {}, el('a', { href: '#/contacts' }, t.back)),
      section('answers-heading', t.answers, this.answers),
      section('photos-heading', t.photos, this.photos),
      section('chat-heading', t.chat, this.chat,
        el('form', { onsubmit: send },
          el('label', { for: 'chat-input' }, t.yourMessage), this.body, this.chatNote,
          el('button', { type: 'submit' }, t.send))),
      section('ask-heading', t.askPhoto,
        el('label', { for: 'ask-channel' }, t.askBy), channel,
        el('button', { type: 'button', onclick: () => this.#ask(channel.value) }, t.askPhoto), this.askNote),
      section('sent-heading', t.sent, this.sent),
      section('erase-heading', t.erase, el('button', { type: 'button', class: 'danger', onclick: () => this.#confirmErase() }, t.erase)))
  }

  problem (text) { this.note.textContent = text }
  close () { this.closed = true; this.#reads.close() }
  refresh () { return this.#erased ? Promise.resolve() : this.load() }

  async load () {
    const t = this.app.t
    const contact = (await this.app.call(CONTACT, { id: this.id }))?.contact
    if (this.closed || this.#erased) return
    if (!contact) return this.#gone(t.notFound)
    this.heading.textContent = contact.displayName || t.unnamed
    const order = this.app.fieldOrder
    const values = [...contact.values].sort((a, b) => (order.get(a.key) ?? 1e6) - (order.get(b.key) ?? 1e6))
    this.answers.replaceChildren(...values.flatMap(({ key, value, updatedAt }) => [
      el('dt', {}, this.app.field(key)?.label || key),
      el('dd', {}, el('span', { class: 'value' }, this.app.shown(key, value)), ' ',
        el('span', { class: 'quiet' }, fill(t.savedAt, { time: this.app.when(updatedAt) })))]))
    if (!contact.values.length) this.answers.replaceChildren(el('dd', {}, t.noAnswers))
    this.photos.replaceChildren(...contact.media.map((media, i) => this.#photo(media, i)))
    if (!contact.media.length) this.photos.replaceChildren(el('li', { class: 'quiet' }, t.noPhotos))
    this.sent.replaceChildren(...contact.messages.map((m) => el('li', {},
      `${this.app.event(m.event)} · ${t.channel[m.channel] || m.channel} · ${t.status[m.status] || m.status}`,
      m.maskedRecipient ? ` · ${m.maskedRecipient}` : '', ' ', el('span', { class: 'quiet' }, this.app.when(m.createdAt)))))
    if (!contact.messages.length) this.sent.replaceChildren(el('li', { class: 'quiet' }, t.noSent))
    await this.#loadChat()
  }

  #photo (media, i) {
    const field = this.app.field(media.fieldKey)?.label || this.app.t.chat
    const t = this.app.t
    const image = el('img', { src: media.url, alt: '', width: 120, height: 120 })
    const open = (event) => {
      const opener = event.currentTarget
      const dialog = el('dialog', { class: 'photo', 'aria-label': fill(t.photoAlt, { n: i + 1, field }) },
        el('img', { src: media.url, alt: fill(t.photoAlt, { n: i + 1, field }) }),
        el('form', { method: 'dialog' }, el('button', { type: 'submit' }, t.close)))
      dialog.addEventListener('close', () => { dialog.remove(); opener.focus() })
      this.element.append(dialog)
      dialog.showModal()
    }
    return el('li', {}, el('button', { type: 'button', class: 'thumb', 'aria-label': fill(t.openPhoto, { n: i + 1, field }), onclick: open }, image))
  }

  #message ({ id, body, author, createdAt }) {
    if (this.#seen.has(id)) return null
    this.#seen.add(id)
    const who = author === 'STAFF' ? this.app.viewer.tenant.name : this.app.t.customer
    return el('li', { class: author === 'STAFF' ? 'mine' : 'theirs' },
      el('span', { class: 'who' }, who, ' ', el('time', { datetime: createdAt }, this.app.when(createdAt))),
      el('span', { class: 'body' }, body))
  }

  async #loadChat () {
    let theirs = 0
    for (let more = true; more && !this.closed;) {
      const page = (await this.app.call(CHAT, { id: this.id, after: this.#chatAfter }))?.chatMessages
      if (!page || this.closed) return
      for (const { node } of page.edges) {
        const item = this.#message(node)
        if (item) this.chat.append(item)
        theirs += Boolean(item) && node.author === 'CONTACT'
      }
      this.#chatAfter = page.pageInfo.endCursor ?? this.#chatAfter
      more = page.pageInfo.hasNextPage
    }
    if (!this.chat.querySelector('li:not(.empty)')) this.chat.replaceChildren(el('li', { class: 'quiet empty' }, this.app.t.noChat))
    else this.chat.querySelector('.empty')?.remove()
    if (theirs) {
      await this.app.call(READ_CHAT, { id: this.id })
      this.app.refreshUnread()
    }
  }

  async #send () {
    const body = this.body.value.trim()
    this.chatNote.textContent = ''
    if (!body) return void (this.chatNote.textContent = this.app.t.errors.empty)
    try {
      const sent = await this.app.mutate(SEND, { id: this.id, body }, 'ChatMessageSent')
      if (sent.invalid) return void (this.chatNote.textContent = this.app.explain(sent.invalid[0]))
      const item = this.#message(sent.chatMessage)
      if (item) { this.chat.querySelector('.empty')?.remove(); this.chat.append(item) }
      this.body.value = ''
    } catch (error) {
      this.chatNote.textContent = this.app.explain(error)
    }
  }

  async #ask (channel) {
    const t = this.app.t
    try {
      const asked = await this.app.mutate(ASK_PHOTO, { id: this.id, channel }, 'PhotoRequested')
      this.askNote.textContent = asked.invalid ? this.app.explain(asked.invalid[0]) : fill(t.photoAsked, { channel: t.channel[channel] })
      if (!asked.invalid) await this.load()
    } catch (error) {
      this.askNote.textContent = this.app.explain(error)
    }
  }

  async #confirmErase () {
    const t = this.app.t
    if (await confirmed(this.element, t.eraseConfirm, t.eraseYes, t.cancel)) await this.#erase()
  }

  async #erase () {
    const t = this.app.t
    try {
      const receipt = await this.app.mutate(ERASE, { id: this.id, locale: this.app.locale }, 'ErasureReceipt')
      this.#erased = true
      this.heading.textContent = t.erasedHeading
      this.element.replaceChildren(this.heading, this.note,
        el('p', {}, fill(t.erasedAt, { time: this.app.when(receipt.erasedAt) })),
        el('table', {},
          el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, t.where), el('th', { scope: 'col' }, t.howMany))),
          el('tbody', {}, receipt.removed.map((row) => el('tr', { 'data-store': row.store }, el('td', {}, row.name), el('td', {}, String(row.count)))))),
        receipt.complete ? null : el('p', {}, t.erasePending),
        el('p', {}, el('a', { href: '#/contacts' }, t.back)))
      this.heading.focus()
    } catch (error) {
      this.note.textContent = this.app.explain(error)
    }
  }

  #gone (text) {
    this.element.replaceChildren(this.heading, el('p', { role: 'status' }, text), el('p', {}, el('a', { href: '#/contacts' }, this.app.t.back)))
  }

  /** This contact's events, answered by reading again what changed (`#reads`). */
  onEvent (kind, id) {
    if (id !== this.id || this.#erased || this.closed) return
    if (kind === 'DELETED') {
      this.#erased = true
      this.#reads.close()
      return this.#gone(this.app.t.erasedMeanwhile)
    }
    this.#reads.poke(kind)
  }
}

// The staff console at /console: Rapidly's public GraphQL API in the browser, as any client of it
// would use it (no private endpoint), so it doubles as the reference client.
//
// The staff token is kept in this tab's sessionStorage: a reload keeps the session, closing the tab
// ends it, and "Sign out" revokes it on the server too. It is never put in a URL, a cookie or a log.
// No cookie means no CSRF: the browser never sends the token by itself, only this code does. Against
// XSS the console relies on never letting any script in: a CSP of `script-src 'self'` without
// 'unsafe-inline', no third-party code, and every value and message put in the page as text.

import { el } from '../lib/dom.js'
import { Api, FAILED, INVALID, LIMITED, Refused, Unavailable } from '../lib/graphql.js'
import { LOCALES, fill, pickLocale } from '../lib/i18n.js'

const api = new Api(new URL('/graphql', location.origin))
const TOKEN_KEY = 'rapidly-console-token'
const LOCALE_KEY = 'rapidly-console-locale' // a preference, not personal data
const TYPING_MS = 10_000
const LANGUAGE_NAMES = { fi: 'Suomi', sv: 'Svenska', en: 'English' }

const LOGIN = `mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) {
  ... on LoginSuccess { token } ${LIMITED} ${FAILED} } }`
const LOGOUT = 'mutation Logout { logout }'
const VIEWER = `query Viewer($locale: String) { viewer { email locale unreadNotifications tenant { name retentionDays
  allowedOrigins messageChannels { event channels } } } fields(locale: $locale) { key label kind choices { value label } } }`
const UNREAD = 'query Unread { viewer { unreadNotifications } }'
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
const NOTIFICATIONS = `query Notifications($locale: String) { notifications(first: 50) {
  edges { node { id contactId text(locale: $locale) createdAt readAt } } } }`
const MARK_READ = 'mutation MarkRead($ids: [ID!]!) { markNotificationsRead(ids: $ids) }'
const EVENTS = 'subscription Events { contactEvents { kind contactId at } }'
// How often the list reads again the name of a contact that keeps changing: the event says when, not
// what, and each read of a contact is audited, so not on every keystroke.
const NAME_EVERY_MS = 10_000

class Console {
  #t; #locale; #token; #viewer; #labels = new Map(); #events = null; #view = null; #live; #badge; #main; #ready = 0

  constructor (root) { this.root = root }

  async start () {
    this.#locale = pickLocale(localStorage.getItem(LOCALE_KEY), navigator.language) || 'en'
    this.#t = await textsFor(this.#locale)
    this.#token = sessionStorage.getItem(TOKEN_KEY)
    addEventListener('hashchange', () => this.#route())
    if (this.#token) await this.#enter()
    else this.#signIn()
  }

  // -- the session ---------------------------------------------------------------------------------

  #signIn (notice = '') {
    const t = this.#t
    this.#events?.close()
    this.#events = this.#token = this.#viewer = null
    sessionStorage.removeItem(TOKEN_KEY)
    document.title = t.title
    const email = el('input', { id: 'email', type: 'email', autocomplete: 'username', required: true })
    const password = el('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true })
    const problem = el('p', { class: 'error', role: 'alert' }, notice)
    const submit = async (event) => {
      event.preventDefault()
      problem.textContent = ''
      try {
        const answer = await api.mutate(LOGIN, { email: email.value, password: password.value }, null, 'LoginSuccess')
        this.#token = answer.token
        sessionStorage.setItem(TOKEN_KEY, answer.token)
        await this.#enter()
      } catch (error) {
        problem.textContent = error instanceof Unavailable && error.retryAfter > 2
          ? fill(t.tooManyAttempts, { seconds: error.retryAfter })
          : error instanceof Unavailable ? t.unavailable : t.wrongCredentials
        password.value = ''
        email.focus()
      }
    }
    this.root.replaceChildren(el('main', { class: 'sign-in' },
      el('h1', {}, t.signInHeading),
      el('form', { onsubmit: submit },
        el('label', { for: 'email' }, t.email), email,
        el('label', { for: 'password' }, t.password), password,
        problem,
        el('button', { type: 'submit', class: 'primary' }, t.signIn)),
      this.#languages()))
    email.focus()
  }

  async #enter () {
    let data
    try {
      data = await api.call(VIEWER, { locale: this.#locale }, this.#token)
    } catch (error) {
      if (!(error instanceof Unavailable)) return this.#signIn(this.#t.sessionEnded)
      this.root.replaceChildren(el('main', {}, el('p', { role: 'status' }, this.#t.unavailable)))
      return void setTimeout(() => this.#enter(), 3000)
    }
    if (!data.viewer) return this.#signIn(this.#t.sessionEnded)
    this.#viewer = data.viewer
    this.#labels = new Map(data.fields.map((field) => [field.key, field]))
    this.#shell()
    this.#events?.close()
    this.#events = api.subscribe(EVENTS, this.#token, {
      onNext: (event) => event?.contactEvents && this.#onEvent(event.contactEvents),
      onReady: () => this.#ready++ && this.#route(), // not on the first: the view has just read it all
      onEnd: () => this.#checkSession()
    })
    this.#route()
  }

  async #signOut () {
    await api.call(LOGOUT, {}, this.#token).catch(() => {})
    this.#signIn(this.#t.signedOut)
  }

  /** A call of the signed-in staff member; a session that has ended signs the console out. */
  async #call (query, variables = {}, success = null) {
    try {
      return await (success ? api.mutate(query, variables, this.#token, success) : api.call(query, variables, this.#token))
    } catch (error) {
      if (error instanceof Refused && error.code !== 'NotFoundError') await this.#checkSession()
      throw error
    }
  }

  async #checkSession () {
    const viewer = await api.call(UNREAD, {}, this.#token).then((data) => data.viewer, (error) => (error instanceof Unavailable ? true : null))
    if (!viewer && this.#token) this.#signIn(this.#t.sessionEnded)
  }

  // -- the frame -----------------------------------------------------------------------------------

  #shell () {
    const t = this.#t
    document.documentElement.lang = this.#locale
    this.#badge = el('span', { class: 'badge' })
    this.#live = el('p', { class: 'sr', role: 'status' })
    this.#main = el('main', { id: 'main' })
    const link = (href, ...text) => el('a', { href }, ...text)
    this.root.replaceChildren(
      el('header', { class: 'top' },
        el('p', { class: 'brand' }, this.#viewer.tenant.name),
        el('nav', { 'aria-label': t.mainNav },
          link('#/contacts', t.contacts),
          link('#/notifications', t.notifications, ' ', this.#badge),
          link('#/settings', t.settings)),
        this.#languages(),
        el('button', { type: 'button', onclick: () => this.#signOut() }, t.signOut)),
      this.#main,
      this.#live)
    this.#showUnread(this.#viewer.unreadNotifications)
  }

  #languages () {
    const select = el('select', { id: 'language', onchange: () => this.#switch(select.value) },
      LOCALES.map((code) => el('option', { value: code, lang: code, selected: code === this.#locale }, LANGUAGE_NAMES[code])))
    return el('div', { class: 'language' }, el('label', { for: 'language' }, this.#t.language), select)
  }

  async #switch (locale) {
    localStorage.setItem(LOCALE_KEY, locale)
    this.#locale = locale
    this.#t = await textsFor(locale)
    document.documentElement.lang = locale
    if (this.#token) await this.#enter()
    else this.#signIn()
    document.getElementById('language')?.focus()
  }

  #showUnread (count) {
    this.#badge.textContent = count ? fill(this.#t.unread, { count: count >= 1000 ? '999+' : count }) : ''
  }

  async #refreshUnread () {
    const data = await this.#call(UNREAD).catch(() => null)
    if (data?.viewer) this.#showUnread(data.viewer.unreadNotifications)
  }

  /** Show the view the address names; its heading takes the focus, so a screen reader starts there. */
  #route () {
    if (!this.#viewer) return
    const [, name, id] = location.hash.split('/')
    this.#view?.close?.()
    const views = { notifications: Notifications, settings: Settings }
    this.#view = name === 'contacts' && id ? new ContactPage(this, decodeURIComponent(id)) : new (views[name] || ContactList)(this)
    for (const a of this.root.querySelectorAll('nav a')) {
      const current = a.getAttribute('href') === `#/${name || 'contacts'}`
      if (current) a.setAttribute('aria-current', 'page')
      else a.removeAttribute('aria-current')
    }
    this.#main.replaceChildren(this.#view.element)
    this.#view.load().catch((error) => this.#view.problem?.(this.explain(error)))
  }

  #onEvent ({ kind, contactId, at }) {
    this.#view?.onEvent?.(kind, contactId, at)
    if (kind !== 'FIELD_SAVED') this.#refreshUnread()
  }

  // -- what the views use --------------------------------------------------------------------------

  get t () { return this.#t }
  get locale () { return this.#locale }
  get viewer () { return this.#viewer }
  call (query, variables) { return this.#call(query, variables) }
  /** A mutation's outcome (`outcome` in lib/graphql.js), for the signed-in staff member. */
  mutate (query, variables, success) { return this.#call(query, variables, success) }
  announce (text) { this.#live.textContent = text }
  when (iso) { return new Date(iso).toLocaleString(this.#locale, { dateStyle: 'short', timeStyle: 'short' }) }
  field (key) { return this.#labels.get(key) }
  /** Each field key's place in the form, to show answers in the order they were asked. */
  get fieldOrder () { return new Map([...this.#labels.keys()].map((key, i) => [key, i])) }

  /** A value as people read it: choice labels, yes or no, numbers and text as they are. */
  shown (key, value) {
    const field = this.#labels.get(key)
    const label = (code) => field?.choices.find((choice) => choice.value === code)?.label ?? code
    if (Array.isArray(value)) return value.map(label).join(', ')
    if (value === true || value === false) return value ? '✓' : '✗'
    return field?.kind === 'CHOICE' ? label(value) : String(value)
  }

  explain (problem) {
    if (problem instanceof Unavailable) return this.#t.unavailable
    return this.#t.errors[problem.code] || problem.message
  }

  unreadChanged (count) { this.#showUnread(count) }
  refreshUnread () { return this.#refreshUnread() }
}

/** A view's frame: its heading (which takes the focus when shown) and a note for problems. */
function frame (title) {
  const heading = el('h1', { tabindex: -1 }, title)
  const note = el('p', { class: 'error', role: 'alert' })
  const element = el('div', { class: 'view' }, heading, note)
  queueMicrotask(() => heading.focus({ preventScroll: true }))
  return { element, heading, note }
}

class ContactList {
  #items = new Map(); #shown = new Map(); #after = null; #search = ''; #typing = new Map(); #reading = new Set()

  constructor (app) {
    const t = (this.app = app).t
    const { element, note } = frame(t.contacts)
    this.element = element
    this.note = note
    const input = el('input', { id: 'search', type: 'search', 'aria-describedby': 'search-help', autocomplete: 'off' })
    const search = (event) => {
      event.preventDefault()
      this.#search = input.value.trim()
      this.#after = null
      this.list.replaceChildren()
      this.#items.clear()
      this.load().catch((error) => this.problem(app.explain(error)))
    }
    this.list = el('ul', { class: 'contacts' })
    this.empty = el('p', { class: 'quiet' })
    this.more = el('button', { type: 'button', hidden: true, onclick: () => this.load() }, t.loadMore)
    element.append(
      el('form', { class: 'search', role: 'search', onsubmit: search },
        el('label', { for: 'search' }, t.search), input,
        el('p', { id: 'search-help', class: 'quiet' }, t.searchHelp),
        el('button', { type: 'submit' }, t.search)),
      this.list, this.empty, this.more)
  }

  problem (text) { this.note.textContent = text }

  async load () {
    const t = this.app.t
    this.note.textContent = ''
    const data = await this.app.call(CONTACTS, { after: this.#after, search: this.#search || null })
    for (const { node } of data.contacts.edges) this.#put(node, 'end')
    this.#after = data.contacts.pageInfo.endCursor
    this.more.hidden = !data.contacts.pageInfo.hasNextPage
    this.empty.textContent = this.#items.size ? '' : this.#search ? t.noMatches : t.noContacts
  }

  /** Show a contact (`id`, `displayName`, `updatedAt`): at the top (just active), at the end (a page
   *  read), or where it is (its name read again). */
  #put (contact, where) {
    const t = this.app.t
    const typing = Date.now() - (this.#typing.get(contact.id) || 0) < TYPING_MS
    const item = el('li', { 'data-id': contact.id, class: typing ? 'typing' : null },
      el('a', { href: `#/contacts/${encodeURIComponent(contact.id)}` },
        el('span', { class: 'name' }, contact.displayName || t.unnamed),
        el('span', { class: 'quiet' }, fill(t.lastActive, { time: this.app.when(contact.updatedAt) })),
        typing ? el('span', { class: 'active' }, t.typing) : null))
    const old = this.#items.get(contact.id)
    this.#items.set(contact.id, item)
    this.#shown.set(contact.id, contact)
    if (where === 'here' && old) old.replaceWith(item)
    else {
      old?.remove()
      if (where === 'top') this.list.prepend(item)
      else this.list.append(item)
    }
    this.empty.textContent = ''
  }

  /** An event moves its contact to the top at once, from what it says (when); the contact's name,
   *  which the event does not carry, is read again at most every NAME_EVERY_MS per contact. */
  onEvent (kind, id, at) {
    if (kind === 'DELETED') {
      this.#items.get(id)?.remove()
      this.#items.delete(id)
      return
    }
    const shown = this.#shown.get(id)
    if (this.#search && !this.#items.has(id)) return // a search shows what matched when it was made
    if (kind === 'FIELD_SAVED') {
      this.#typing.set(id, Date.now())
      setTimeout(() => this.#items.get(id)?.classList.remove('typing'), TYPING_MS)
    }
    if (shown && this.#items.has(id)) this.#put({ ...shown, updatedAt: at || shown.updatedAt }, 'top')
    this.#read(id, shown && this.#items.has(id) ? NAME_EVERY_MS : 0)
  }

  #read (id, after) {
    if (this.#reading.has(id)) return
    this.#reading.add(id)
    setTimeout(async () => {
      this.#reading.delete(id)
      const contact = (await this.app.call(ONE, { id }).catch(() => null))?.contact
      if (!contact) return
      if (this.#items.has(id)) this.#put(contact, 'here')
      else if (!this.#search) this.#put(contact, 'top')
    }, after)
  }
}

class ContactPage {
  #seen = new Set(); #chatAfter = null; #busy = null; #again = false; #erased = false

  constructor (app, id) {
    const t = (this.app = app).t
    this.id = id
    const { element, heading, note } = frame(t.contacts)
    Object.assign(this, { element, heading, note })
    this.answers = el('dl', { class: 'answers' })
    this.photos = el('ul', { class: 'photos' })
    this.sent = el('ul', { class: 'sent' })
    this.chat = el('ol', { class: 'chat', tabindex: 0, 'aria-labelledby': 'chat-heading' })
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

  async load () {
    const t = this.app.t
    const contact = (await this.app.call(CONTACT, { id: this.id }))?.contact
    if (!contact) return this.#gone(t.notFound)
    this.heading.textContent = contact.displayName || t.unnamed
    document.title = `${this.heading.textContent} – ${t.title}`
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
      `${m.event} · ${t.channel[m.channel] || m.channel} · ${t.status[m.status] || m.status}`,
      m.maskedRecipient ? ` · ${m.maskedRecipient}` : '', ' ', el('span', { class: 'quiet' }, this.app.when(m.createdAt)))))
    if (!contact.messages.length) this.sent.replaceChildren(el('li', { class: 'quiet' }, t.noSent))
    await this.#loadChat()
  }

  #photo (media, i) {
    const field = this.app.field(media.fieldKey)?.label || this.app.t.chat
    const t = this.app.t
    const image = el('img', { src: media.url, alt: '', width: 120, height: 120 })
    const open = () => {
      const dialog = el('dialog', { class: 'photo', 'aria-label': fill(t.photoAlt, { n: i + 1, field }) },
        el('img', { src: media.url, alt: fill(t.photoAlt, { n: i + 1, field }) }),
        el('form', { method: 'dialog' }, el('button', { type: 'submit' }, t.close)))
      dialog.addEventListener('close', () => dialog.remove())
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
    for (let more = true; more;) {
      const page = (await this.app.call(CHAT, { id: this.id, after: this.#chatAfter }))?.chatMessages
      if (!page) return
      for (const { node } of page.edges) {
        const item = this.#message(node)
        if (item) this.chat.append(item)
        theirs += Boolean(item) && node.author === 'CONTACT'
      }
      this.#chatAfter = page.pageInfo.endCursor ?? this.#chatAfter
      more = page.pageInfo.hasNextPage
    }
    if (!this.chat.children.length) this.chat.replaceChildren(el('li', { class: 'quiet empty' }, this.app.t.noChat))
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

  #confirmErase () {
    const t = this.app.t
    const cancel = el('button', { type: 'button', class: 'primary', onclick: () => dialog.close() }, t.cancel)
    const erase = el('button', { type: 'button', class: 'danger', onclick: () => { dialog.close(); this.#erase() } }, t.eraseYes)
    const dialog = el('dialog', { 'aria-labelledby': 'erase-question', role: 'alertdialog' },
      el('p', { id: 'erase-question' }, t.eraseConfirm), el('div', { class: 'actions' }, cancel, erase))
    dialog.addEventListener('close', () => dialog.remove())
    this.element.append(dialog)
    dialog.showModal()
    cancel.focus()
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

  /** This contact's events, each answered by reading again what changed (one read at a time). */
  async onEvent (kind, id) {
    if (id !== this.id || this.#erased) return
    if (kind === 'DELETED') return this.#gone(this.app.t.erasedMeanwhile)
    if (this.#busy) { this.#again = true; return }
    this.#busy = kind === 'CHAT_MESSAGE' ? this.#loadChat() : this.load()
    try { await this.#busy } catch {} finally { this.#busy = null }
    if (this.#again) { this.#again = false; this.onEvent('FIELD_SAVED', id) }
  }
}

class Notifications {
  constructor (app) {
    const t = (this.app = app).t
    const { element, note } = frame(t.notifications)
    Object.assign(this, { element, note })
    this.list = el('ul', { class: 'notifications' })
    this.mark = el('button', { type: 'button', onclick: () => this.#markAll() }, t.markAllRead)
    element.append(this.mark, this.list)
  }

  problem (text) { this.note.textContent = text }

  async load () {
    const t = this.app.t
    const edges = (await this.app.call(NOTIFICATIONS, { locale: this.app.locale })).notifications.edges
    this.unread = edges.filter(({ node }) => !node.readAt).map(({ node }) => node.id)
    this.list.replaceChildren(...edges.map(({ node }) => el('li', { class: node.readAt ? null : 'unread' },
      el('a', { href: `#/contacts/${encodeURIComponent(node.contactId)}` }, node.text), ' ',
      el('span', { class: 'quiet' }, this.app.when(node.createdAt)))))
    if (!edges.length) this.list.replaceChildren(el('li', { class: 'quiet' }, t.noNotifications))
    this.mark.hidden = !this.unread.length
  }

  async #markAll () {
    await this.app.call(MARK_READ, { ids: this.unread })
    this.app.unreadChanged(0)
    await this.load()
  }

  onEvent (kind) { if (kind !== 'FIELD_SAVED') this.load().catch(() => {}) }
}

class Settings {
  constructor (app) {
    const t = (this.app = app).t
    const { element } = frame(t.settings)
    const tenant = app.viewer.tenant
    const row = (term, ...details) => [el('dt', {}, term), ...details.map((detail) => el('dd', {}, detail))]
    const channels = tenant.messageChannels.map(({ event, channels }) =>
      `${event}: ${channels.map((c) => t.channel[c] || c).join(', ') || t.off}`)
    element.append(el('dl', { class: 'settings' },
      row(t.keptFor, tenant.retentionDays ? fill(t.keptDays, { days: tenant.retentionDays }) : t.keptUntilErased),
      row(t.messageChannels, ...channels),
      row(t.origins, ...(tenant.allowedOrigins.length ? tenant.allowedOrigins : [t.noOrigins]))))
    this.element = element
  }

  async load () {}
}

async function textsFor (locale) {
  return (await import(`./texts-${LOCALES.includes(locale) ? locale : 'en'}.js`)).default
}

new Console(document.getElementById('app')).start()

// <rapidly-form tenant="SLUG" locale="fi|sv|en">: a company's intake form on its own website.
//
//   <script type="module" src="{RAPIDLY_BASE_URL}/embed/form.js"></script>
//   <rapidly-form tenant="SLUG"></rapidly-form>
//
// A client of the public GraphQL API like any other. Everything it loads comes from the origin it
// was loaded from, so a host page's CSP needs to allow that origin only. Each answer is saved as it
// is typed (lib/save-queue.js); the contact starts with the first answer. The contact token lives in
// this tab's sessionStorage (cleared when the tab closes), so a reload continues the same contact;
// the answers themselves are never written to the browser's storage.

import { el } from '../lib/dom.js'
import { Api, FAILED, INVALID, LIMITED, Refused, Unavailable } from '../lib/graphql.js'
import { SaveQueue } from '../lib/save-queue.js'
import { fill, pickLocale } from '../lib/i18n.js'
import { textsFor } from './texts.js'

const BASE = new URL('../', import.meta.url)
const api = new Api(new URL('graphql', BASE))

const FORM = `query Form($tenant: String!, $locale: String) { form(tenant: $tenant, locale: $locale) {
  tenantName privacyPolicyUrl locale
  fields { key kind label purpose help required role choices { value label } limits { maxLength } } } }`
const START = `mutation Start($tenant: String!, $locale: String) { startContact(tenant: $tenant, locale: $locale) {
  ... on ContactSession { token selfServiceUrl } ${LIMITED} ${FAILED} } }`
const SAVE = `mutation Save($key: String!, $value: JSON) { saveField(key: $key, value: $value) { ${INVALID} ${FAILED} } }`
const ME = 'query Me($locale: String) { me(locale: $locale) { selfServiceUrl values { key value } } }'
const EVENTS = 'subscription Events { myEvents { kind } }'
const INPUT_TYPES = { EMAIL: 'email', PHONE: 'tel', DATE: 'date' }
const AUTOCOMPLETE = { NAME: 'name', EMAIL: 'email', PHONE: 'tel' }
const empty = (value) => value === null || value === '' || value === false || value?.length === 0

export class RapidlyForm extends HTMLElement {
  #root; #t; #form; #queue; #live; #mine; #notice; #doneNote; #chat; #restoring; #extras
  #token = null; #starting = null; #events = null; #fields = new Map(); #photos = null; #troubled = false; #doneAsked = false

  get tenant () { return this.getAttribute('tenant') || '' }

  /** True while something typed or chosen is not yet stored. */
  get unsaved () { return this.#queue.unsaved || this.#photos?.uploading > 0 }

  connectedCallback () {
    addEventListener('beforeunload', this.#leaving)
    addEventListener('online', this.#online)
    document.addEventListener('visibilitychange', this.#hidden)
    if (this.#root) { // moved in the page: listen again
      if (this.#token) this.#listen()
      return
    }
    this.#root = el('div', { class: 'rapidly', hidden: true })
    const show = () => { this.#root.hidden = false }
    const style = el('link', { rel: 'stylesheet', href: new URL('embed/form.css', BASE), onload: show, onerror: show })
    this.attachShadow({ mode: 'open' }).append(style, this.#root)
    this.#queue = new SaveQueue((key, value) => this.#save(key, value))
    this.#queue.addEventListener('state', (event) => this.#showState(event.detail))
    this.#load(0)
  }

  disconnectedCallback () {
    removeEventListener('beforeunload', this.#leaving)
    removeEventListener('online', this.#online)
    document.removeEventListener('visibilitychange', this.#hidden)
    this.#events?.close()
    this.#events = null
  }

  #leaving = (event) => {
    if (!this.unsaved) return
    this.#queue.flush()
    event.preventDefault() // the browser asks "Leave site?"
    event.returnValue = ''
  }

  #online = () => this.#queue.retryNow()
  #hidden = () => document.visibilityState === 'hidden' && this.#queue.flush()
  #tell (name, detail) { this.dispatchEvent(new CustomEvent(`rapidly-${name}`, { bubbles: true, detail })) }
  #say (...children) { this.#root.replaceChildren(el('p', { role: 'status' }, ...children)) }

  // -- loading -------------------------------------------------------------------------------------

  async #load (attempt) {
    const locale = pickLocale(this.getAttribute('locale'), document.documentElement.lang)
    const asked = api.call(FORM, { tenant: this.tenant, locale }).then(({ form }) => ({ form }), (error) => ({ error }))
    this.#t ??= await textsFor(locale)
    if (attempt === 0) this.#say(this.#t.loading)
    const { form, error } = await asked
    if (error instanceof Refused) console.warn(`rapidly-form: ${error.message}`) // for the site's developer
    if (error && !(error instanceof Refused)) {
      if (attempt === 3) console.warn('rapidly-form: no answer from Rapidly yet; is this site\'s origin listed for the tenant?')
      this.#say(this.#t.loadFailed)
      setTimeout(() => this.#load(attempt + 1), Math.min(30_000, 1000 * 2 ** attempt))
      return
    }
    if (!form) {
      this.#say(error ? this.#t.notAllowed : this.#t.noSuchForm)
      return
    }
    this.#form = form
    if (form.locale !== locale) this.#t = await textsFor(form.locale)
    this.#root.lang = form.locale
    this.#restoring = this.#restore() // a first keystroke meanwhile waits for it (see #contact)
    const more = this.#build()
    this.#tell('ready', { locale: form.locale }) // the fields can be typed into
    await Promise.all([this.#restoring, more])
  }

  /** The contact token of this tab: read (no argument), kept (a token) or dropped (null). */
  #stored (token) {
    const key = `rapidly-form:${BASE.origin}:${this.tenant}`
    try {
      if (token === undefined) return sessionStorage.getItem(key)
      if (token === null) sessionStorage.removeItem(key)
      else sessionStorage.setItem(key, token)
    } catch { /* storage blocked: the contact lasts as long as the page */ }
    return null
  }

  /** After a reload: the same contact, its saved answers shown again. */
  async #restore () {
    const token = this.#stored()
    if (!token) return
    let me
    try {
      me = (await api.call(ME, { locale: this.#form.locale }, token)).me
    } catch (error) {
      if (error instanceof Unavailable) this.#adopt(token) // keep it: the server is away for a moment
      return
    }
    if (!me) return this.#stored(null)
    for (const { key, value } of me.values) {
      if (this.#queue.state(key) === 'idle') this.#fields.get(key)?.write(value)
    }
    this.#adopt(token, me.selfServiceUrl)
  }

  // -- the form ------------------------------------------------------------------------------------

  #build () {
    const { fields, tenantName, privacyPolicyUrl } = this.#form
    const t = this.#t
    const photos = fields.some((field) => field.kind === 'IMAGE')
    const slots = [el('div'), el('div')] // the photos' phone section and the chat, in a moment
    this.#live = el('p', { class: 'sr', role: 'status' })
    this.#mine = el('p', { class: 'my-data' }, t.nothingStored)
    this.#notice = el('p', { class: 'note', role: 'status', tabindex: -1 })
    this.#doneNote = el('p', { class: 'note', role: 'status' })
    this.#root.replaceChildren(el('section', { 'aria-labelledby': 'rapidly-title' },
      el('h2', { id: 'rapidly-title' }, tenantName),
      el('p', {}, t.intro),
      this.#mine,
      this.#notice,
      fields.map((field) => this.#fieldView(field)),
      slots[0],
      el('div', { class: 'done' }, el('button', { type: 'button', class: 'primary', onclick: () => this.#done() }, t.done), this.#doneNote),
      slots[1],
      privacyPolicyUrl && el('p', {}, el('a', { href: privacyPolicyUrl, target: '_blank', rel: 'noopener noreferrer' }, t.privacyPolicy)),
      this.#live))
    // The fields work already; the rest is loaded now, not before them.
    this.#extras = Promise.all([photos && import('./photos.js'), import('./chat.js')]).then(([module, chat]) => {
      const session = this.#session()
      if (module) slots[0].replaceWith((this.#photos = new module.Photos(session)).view)
      slots[1].replaceWith((this.#chat = new chat.Chat(session)).view)
      this.#catchUp()
    })
    return this.#extras
  }

  /** What the chat and the photos need of the form. */
  #session () {
    const locale = this.#form.locale
    return {
      api,
      t: this.#t,
      company: this.#form.tenantName,
      token: () => this.#token,
      contact: () => this.#contact(),
      announce: (text) => { this.#live.textContent = text },
      explain: (problem, field) => this.#explain(problem, field),
      images: () => [...this.#fields.values()].filter((entry) => entry.photos),
      clock: (iso) => new Date(iso).toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' })
    }
  }

  /** A field: its label, why it is asked, its control, its error and its save state. Each control's
   *  `read()` gives the value to save, `write(value)` shows a saved one. */
  #fieldView (field) {
    const t = this.#t
    const id = `rf-${field.key}`
    const why = el('p', { class: 'why', id: `${id}-why` }, el('span', { class: 'why-label' }, t.why), ' ', field.purpose)
    const help = field.help && el('p', { class: 'help', id: `${id}-help` }, field.help)
    const entry = { field, status: el('p', { class: 'status', id: `${id}-status` }), error: el('p', { class: 'error', id: `${id}-error`, role: 'alert' }) }
    const described = [why.id, help?.id, entry.error.id, entry.status.id].filter(Boolean).join(' ')
    const title = [field.label, field.required && el('span', { class: 'required' }, ` (${t.required})`)]
    // A control of a form rebuilt since (after an erasure) saves nothing, whatever events it still fires.
    const changed = (now) => this.#fields.get(field.key) === entry && this.#queue.set(field.key, entry.read(), { now })
    let body
    if (field.kind === 'CHOICE' || field.kind === 'MULTI_CHOICE') {
      const type = field.kind === 'CHOICE' ? 'radio' : 'checkbox'
      const boxes = field.choices.map(({ value }) => el('input', { type, name: id, value, onchange: () => changed(true) }))
      const picked = () => boxes.filter((box) => box.checked).map((box) => box.value)
      entry.read = () => (type === 'radio' ? picked()[0] ?? null : picked())
      entry.write = (value) => boxes.forEach((box) => { box.checked = [].concat(value ?? []).includes(box.value) })
      entry.control = el('fieldset', { 'aria-describedby': described }, el('legend', {}, title), why, help,
        boxes.map((box, i) => el('label', { class: 'choice' }, box, field.choices[i].label)))
      body = [entry.control]
    } else if (field.kind === 'BOOLEAN') {
      entry.control = el('input', { type: 'checkbox', id, 'aria-describedby': described, onchange: () => changed(true) })
      entry.read = () => entry.control.checked
      entry.write = (value) => { entry.control.checked = value === true }
      body = [el('label', { class: 'choice', for: id }, entry.control, title), why, help]
    } else if (field.kind === 'IMAGE') {
      const progress = el('progress', { max: 1, value: 0, hidden: true, 'aria-labelledby': entry.status.id })
      entry.control = el('input', { id, type: 'file', accept: 'image/jpeg,image/png,image/webp', multiple: true, 'aria-describedby': described })
      entry.control.addEventListener('change', async () => {
        const files = [...entry.control.files]
        entry.control.value = ''
        await this.#extras
        for (const file of files) await this.#photos.upload(entry, file, progress)
      })
      entry.photos = el('ul', { class: 'photos' })
      entry.read = () => entry.photos.children.length || null
      entry.write = () => {}
      body = [el('label', { for: id }, title), why, help, entry.control, progress, entry.photos]
    } else {
      const long = field.kind === 'LONG_TEXT'
      entry.control = el(long ? 'textarea' : 'input', {
        id,
        type: !long && (INPUT_TYPES[field.kind] || 'text'),
        rows: long && 4,
        inputmode: field.kind === 'NUMBER' && 'decimal',
        autocomplete: AUTOCOMPLETE[field.role],
        maxlength: field.limits.maxLength,
        'aria-required': field.required && 'true',
        'aria-describedby': described,
        oninput: () => changed(false),
        onchange: () => changed(true),
        onblur: () => this.#showState({ key: field.key, state: this.#queue.state(field.key), errors: entry.errors })
      })
      entry.read = () => entry.control.value
      entry.write = (value) => { entry.control.value = value ?? '' }
      body = [el('label', { for: id }, title), why, help, entry.control]
    }
    this.#fields.set(field.key, entry)
    return el('div', { class: 'field', 'data-key': field.key }, body, entry.error, entry.status)
  }

  /** A problem in the reader's language: a field's error, a refusal, or the server being away. */
  #explain (problem, field) {
    if (problem instanceof Unavailable) return this.#t.errors[problem.retryAfter > 2 ? 'rate_limited' : 'unavailable']
    const template = this.#t.errors[problem.code]
    return template ? fill(template, { max: field?.limits.maxLength }) : problem.message
  }

  #showState ({ key, state, errors }) {
    const entry = this.#fields.get(key)
    if (!entry) return
    const t = this.#t
    const typing = this.shadowRoot.activeElement === entry.control // a half-typed value is not an error yet
    const wrong = state === 'failed' || (state === 'invalid' && !typing)
    entry.errors = errors
    entry.status.textContent = state === 'invalid' ? (typing ? t.notYet : '') : t[state] || ''
    entry.status.dataset.state = state
    entry.error.textContent = wrong && errors?.length ? this.#explain(errors[0], entry.field) : ''
    const invalid = String(state === 'invalid' || state === 'failed')
    for (const control of entry.control.localName === 'fieldset' ? entry.control.querySelectorAll('input') : [entry.control]) {
      control.setAttribute('aria-invalid', invalid)
    }
    if (state === 'saved') this.#tell('saved', { key })
    if (state === 'retrying' && !this.#troubled) {
      this.#troubled = true
      this.#live.textContent = t.announceRetrying
    }
    if (this.#queue.unsaved) return
    if (this.#troubled) this.#live.textContent = t.announceRecovered
    this.#troubled = false
    if (this.#doneAsked) this.#doneSummary()
  }

  #done () {
    this.#doneAsked = true
    this.#queue.flush()
    for (const [key, entry] of this.#fields) {
      if (this.#queue.state(key) === 'invalid') entry.error.textContent = this.#explain(entry.errors[0], entry.field)
    }
    if (this.#queue.unsaved) this.#doneNote.textContent = this.#t.saving
    else this.#doneSummary()
  }

  #doneSummary () {
    this.#doneAsked = false
    const missing = [...this.#fields.values()].filter(({ field, read }) => field.required && empty(read()))
    this.#doneNote.textContent = missing.length
      ? fill(this.#t.missing, { fields: missing.map(({ field }) => field.label).join(', ') })
      : fill(this.#t.allSaved, { company: this.#form.tenantName })
  }

  // -- the contact and its answers -----------------------------------------------------------------

  /** The contact's token, starting the contact if there is none yet (once, however many ask). */
  async #contact () {
    await this.#restoring // after a reload, the contact it continues
    if (this.#token) return this.#token
    this.#starting ??= api.mutate(START, { tenant: this.tenant, locale: this.#form.locale }, null, 'ContactSession')
      .then((session) => {
        this.#adopt(session.token, session.selfServiceUrl)
        this.#tell('started')
        return session.token
      })
      .finally(() => { this.#starting = null })
    return this.#starting
  }

  #adopt (token, selfServiceUrl) {
    this.#token = token
    this.#stored(token)
    if (selfServiceUrl) this.#mine.replaceChildren(el('a', { href: selfServiceUrl, target: '_blank', rel: 'noopener noreferrer' }, this.#t.myData))
    this.#listen()
    this.#catchUp()
  }

  /** Live events of this contact: photos from the phone, the company's messages, an erasure. */
  #listen () {
    this.#events?.close()
    this.#events = api.subscribe(EVENTS, this.#token, {
      onNext: (data) => this.#onEvent(data?.myEvents?.kind),
      onReady: () => this.#catchUp(),
      onEnd: () => this.#stillThere() // the token was refused: gone, or the database just restarted
    })
  }

  async #stillThere () {
    const token = this.#token
    const me = await api.call(ME, {}, token).then((data) => data.me, (error) => (error instanceof Unavailable ? undefined : null))
    if (me === null && token === this.#token) this.#erased(this.#t.restarted)
    else if (me === undefined) setTimeout(() => this.#token === token && this.#listen(), 5000)
  }

  #forget () {
    this.#events?.close()
    this.#events = this.#token = null
    this.#stored(null)
    this.#mine.replaceChildren(this.#t.nothingStored)
  }

  async #save (key, value) {
    const token = await this.#contact()
    try {
      return await api.mutate(SAVE, { key, value }, token, 'FieldSaved')
    } catch (error) {
      if (error.code !== 'AuthError') throw error
      // The contact is gone: erased (from the end user's own page, or by the company) while no event
      // could say so, or expired. As after an erasure, the form starts anew; nothing it held is sent
      // to a new contact, which would undo the erasure.
      if (this.#token === token) this.#erased(this.#t.restarted)
      throw new Unavailable() // (a save of a form rebuilt since is dropped by the queue)
    }
  }

  // -- live events ---------------------------------------------------------------------------------

  /** What changed while no events could arrive (before a subscription, after a reconnect). */
  #catchUp () {
    this.#photos?.refresh()
    this.#chat?.load().catch(() => {})
  }

  #onEvent (kind) {
    if (kind === 'MEDIA_ADDED') this.#photos?.refresh()
    else if (kind === 'CHAT_MESSAGE') this.#chat?.load().catch(() => {})
    else if (kind === 'DELETED') this.#erased()
  }

  /** The contact was erased (from the end user's own page, or by the company), or its token no
   *  longer works: the form starts afresh, and says so where focus was. */
  #erased (notice = this.#t.erased) {
    const hadFocus = this.shadowRoot.activeElement !== null
    this.#queue.clear()
    this.#forget()
    this.#fields.clear()
    this.#build()
    this.#notice.textContent = notice
    if (hadFocus) this.#notice.focus()
    this.#tell('erased')
  }
}

if (!customElements.get('rapidly-form')) customElements.define('rapidly-form', RapidlyForm)

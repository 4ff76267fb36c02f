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

import { el, safeSvg } from '../lib/dom.js'
import { Api, Refused, Unavailable } from '../lib/graphql.js'
import { SaveQueue } from '../lib/save-queue.js'
import { fill, pickLocale, textsFor } from './texts.js'

const BASE = new URL('../', import.meta.url)
const api = new Api(new URL('graphql', BASE))

const FIELDS = 'key kind label purpose help required role choices { value label } limits { maxLength }'
const FORM = `query Form($tenant: String!, $locale: String) {
  form(tenant: $tenant, locale: $locale) { tenantName privacyPolicyUrl locale fields { ${FIELDS} } } }`
const START = `mutation Start($tenant: String!, $locale: String) { startContact(tenant: $tenant, locale: $locale) {
  __typename ... on ContactSession { token selfServiceUrl } ... on RateLimitedError { retryAfterSeconds }
  ... on Error { message } } }`
const SAVE = `mutation Save($key: String!, $value: JSON) { saveField(key: $key, value: $value) {
  __typename ... on InputInvalidError { errors { field code message } } ... on Error { message } } }`
const ME = 'query Me($locale: String) { me(locale: $locale) { selfServiceUrl values { key value } } }'
const MEDIA = 'query Media { me { media { id fieldKey url } } }'
const MESSAGE = 'id body author createdAt'
const CHAT = `query Chat($after: String) { me { chatMessages(first: 50, after: $after) {
  edges { node { ${MESSAGE} } } pageInfo { hasNextPage endCursor } } } }`
const EVENTS = 'subscription Events { myEvents { kind } }'
const UPLOAD = `mutation Upload($fieldKey: String!, $file: Upload!) { uploadMedia(fieldKey: $fieldKey, file: $file) {
  __typename ... on InputInvalidError { errors { field code message } } ... on Error { message } } }`
const SHOW_QR = `mutation ShowQr { createContinueLink { __typename ... on ContinueLink { url qrSvg expiresAt }
  ... on Error { message } } }`
const SEND_LINK = `mutation SendLink($channel: Channel!) { sendContinueLink(channel: $channel) { __typename
  ... on LinkSent { maskedRecipient } ... on InputInvalidError { errors { field code message } } ... on Error { message } } }`
const SEND_CHAT = `mutation SendChat($body: String!) { sendChatMessage(body: $body) { __typename
  ... on ChatMessageSent { chatMessage { ${MESSAGE} } } ... on InputInvalidError { errors { field code message } }
  ... on Error { message } } }`
const READ_CHAT = 'mutation ReadChat { markChatRead }'

const INPUT_TYPES = { TEXT: 'text', EMAIL: 'email', PHONE: 'tel', NUMBER: 'text', DATE: 'date' }
const AUTOCOMPLETE = { NAME: 'name', EMAIL: 'email', PHONE: 'tel' }
const IMAGE_TYPES = 'image/jpeg,image/png,image/webp'

/** What the server's typed failure means for the caller: a retry may cure it, or it will not. */
function failure (result) {
  if (result.__typename === 'RateLimitedError') return new Unavailable(result.retryAfterSeconds)
  return new Refused(result.message, result.__typename)
}

export class RapidlyForm extends HTMLElement {
  #root; #t = null; #form = null; #token = null; #starting = null; #events = null
  #fields = new Map(); #queue; #live; #mine; #doneNote; #chatList; #chatInput; #chatError; #qr; #linkNote
  #chatCursor = null; #chatSeen = new Set(); #uploading = 0; #troubled = false; #doneAsked = false

  get tenant () { return this.getAttribute('tenant') || '' }

  connectedCallback () {
    if (this.#root) return
    const shadow = this.attachShadow({ mode: 'open' })
    this.#root = el('div', { class: 'rapidly', hidden: true })
    const show = () => { this.#root.hidden = false }
    shadow.append(el('link', { rel: 'stylesheet', href: new URL('embed/form.css', BASE), onload: show, onerror: show }), this.#root)
    this.#queue = new SaveQueue((key, value) => this.#save(key, value))
    this.#queue.addEventListener('state', (event) => this.#showState(event.detail))
    addEventListener('beforeunload', this.#beforeUnload)
    addEventListener('online', this.#online)
    document.addEventListener('visibilitychange', this.#hidden)
    this.#load(0)
  }

  disconnectedCallback () {
    removeEventListener('beforeunload', this.#beforeUnload)
    removeEventListener('online', this.#online)
    document.removeEventListener('visibilitychange', this.#hidden)
    this.#events?.close()
  }

  /** True while something typed or chosen is not yet stored. */
  get unsaved () { return this.#queue.unsaved || this.#uploading > 0 }

  #beforeUnload = (event) => {
    if (!this.unsaved) return
    this.#queue.flush()
    event.preventDefault()
    event.returnValue = ''
  }

  #online = () => this.#queue.retryNow()
  #hidden = () => document.visibilityState === 'hidden' && this.#queue.flush()

  // -- loading -------------------------------------------------------------------------------------

  async #load (attempt) {
    const locale = pickLocale(this.getAttribute('locale'), document.documentElement.lang)
    const asked = api.call(FORM, { tenant: this.tenant, locale }).then((data) => ({ form: data.form }), (error) => ({ error }))
    this.#t ??= await textsFor(locale)
    if (attempt === 0) this.#root.replaceChildren(el('p', { role: 'status' }, this.#t.loading))
    const { form, error } = await asked
    if (error instanceof Refused) {
      console.warn(`rapidly-form: ${error.message}`) // for the site's developer: e.g. an origin to list
      this.#root.replaceChildren(el('p', { role: 'alert' }, this.#t.notAllowed))
      return
    }
    if (error) {
      this.#root.replaceChildren(el('p', { role: 'status' }, this.#t.loadFailed))
      setTimeout(() => this.#load(attempt + 1), Math.min(30_000, 1000 * 2 ** attempt))
      return
    }
    if (!form) {
      this.#root.replaceChildren(el('p', { role: 'alert' }, this.#t.noSuchForm))
      return
    }
    this.#form = form
    if (form.locale !== locale) this.#t = await textsFor(form.locale)
    this.#build()
    this.dispatchEvent(new CustomEvent('rapidly-ready', { bubbles: true, detail: { locale: form.locale } }))
    await this.#restore()
  }

  #storageKey () { return `rapidly-form:${BASE.origin}:${this.tenant}` }

  #stored (token) {
    try {
      if (token === undefined) return sessionStorage.getItem(this.#storageKey())
      if (token === null) sessionStorage.removeItem(this.#storageKey())
      else sessionStorage.setItem(this.#storageKey(), token)
    } catch { /* storage blocked: the contact lasts as long as the page */ }
    return null
  }

  /** After a reload: the same contact, its saved answers shown again. */
  async #restore () {
    const token = this.#stored()
    if (!token) return
    let me = null
    try {
      me = (await api.call(ME, { locale: this.#form.locale }, token)).me
    } catch (error) {
      if (error instanceof Unavailable) { this.#adopt(token); return } // keep it: the server is away
    }
    if (!me) { this.#stored(null); return }
    for (const { key, value } of me.values) {
      const field = this.#fields.get(key)
      if (field && this.#queue.state(key) === 'idle') field.write(value)
    }
    this.#adopt(token, me.selfServiceUrl)
  }

  // -- the form ------------------------------------------------------------------------------------

  #build () {
    const t = this.#t
    const form = this.#form
    this.#live = el('p', { class: 'sr', role: 'status' })
    this.#mine = el('p', { class: 'mine' }, t.nothingStored)
    this.#doneNote = el('p', { class: 'note', role: 'status' })
    const hasImages = form.fields.some((field) => field.kind === 'IMAGE')
    this.#root.replaceChildren(el('section', { 'aria-labelledby': 'rf-title' },
      el('h2', { id: 'rf-title' }, form.tenantName),
      el('p', {}, t.intro),
      this.#mine,
      form.fields.map((field) => this.#fieldView(field)),
      hasImages ? this.#continueView() : null,
      el('div', { class: 'done' }, el('button', { type: 'button', class: 'primary', onclick: () => this.#done() }, t.done), this.#doneNote),
      this.#chatView(),
      form.privacyPolicyUrl
        ? el('p', {}, el('a', { href: form.privacyPolicyUrl, target: '_blank', rel: 'noopener noreferrer' }, t.privacyPolicy))
        : null,
      this.#live))
  }

  #fieldView (field) {
    const t = this.#t
    const id = `rf-${field.key}`
    const why = el('p', { class: 'why', id: `${id}-why` }, el('span', { class: 'why-label' }, t.why), ' ', field.purpose)
    const help = field.help ? el('p', { class: 'help', id: `${id}-help` }, field.help) : null
    const status = el('p', { class: 'status', id: `${id}-status` })
    const error = el('p', { class: 'error', id: `${id}-error`, role: 'alert' })
    const described = [why.id, help?.id, error.id, status.id].filter(Boolean).join(' ')
    const title = [field.label, field.required ? el('span', { class: 'required' }, ` (${t.required})`) : null]
    const entry = { field, status, error, control: null, read: () => null, write: () => {} }
    const changed = (now) => this.#queue.set(field.key, entry.read(), { now })
    let body

    if (field.kind === 'CHOICE' || field.kind === 'MULTI_CHOICE') {
      const type = field.kind === 'CHOICE' ? 'radio' : 'checkbox'
      const boxes = field.choices.map((choice) => el('input', { type, name: id, value: choice.value, onchange: () => changed(true) }))
      entry.read = () => {
        const picked = boxes.filter((box) => box.checked).map((box) => box.value)
        return type === 'radio' ? picked[0] ?? null : picked
      }
      entry.write = (value) => boxes.forEach((box) => { box.checked = [].concat(value ?? []).includes(box.value) })
      entry.control = el('fieldset', { 'aria-describedby': described },
        el('legend', {}, title), why, help,
        boxes.map((box, i) => el('label', { class: 'choice' }, box, field.choices[i].label)))
      body = [entry.control]
    } else if (field.kind === 'BOOLEAN') {
      const box = el('input', { type: 'checkbox', id, 'aria-describedby': described, onchange: () => changed(true) })
      entry.read = () => box.checked
      entry.write = (value) => { box.checked = value === true }
      entry.control = box
      body = [el('label', { class: 'choice', for: id }, box, title), why, help]
    } else if (field.kind === 'IMAGE') {
      return this.#imageView(field, entry, { id, title, why, help, described })
    } else {
      const multiline = field.kind === 'LONG_TEXT'
      const input = el(multiline ? 'textarea' : 'input', {
        id,
        type: multiline ? null : INPUT_TYPES[field.kind] || 'text',
        rows: multiline ? 4 : null,
        inputmode: field.kind === 'NUMBER' ? 'decimal' : null,
        autocomplete: AUTOCOMPLETE[field.role] || null,
        maxlength: field.limits.maxLength,
        'aria-required': field.required ? 'true' : null,
        'aria-describedby': described,
        oninput: () => changed(false),
        onchange: () => changed(true),
        onblur: () => this.#showState({ key: field.key, state: this.#queue.state(field.key), errors: entry.errors })
      })
      entry.read = () => input.value
      entry.write = (value) => { input.value = value === null || value === undefined ? '' : String(value) }
      entry.control = input
      body = [el('label', { for: id }, title), why, help, input]
    }
    this.#fields.set(field.key, entry)
    return el('div', { class: 'field', 'data-key': field.key }, body, error, status)
  }

  #imageView (field, entry, { id, title, why, help, described }) {
    const input = el('input', { id, type: 'file', accept: IMAGE_TYPES, multiple: true, 'aria-describedby': described })
    const progress = el('progress', { max: 1, value: 0, hidden: true, 'aria-labelledby': `${id}-status` })
    entry.photos = el('ul', { class: 'photos' })
    entry.control = input
    entry.read = () => entry.photos.children.length || null
    input.addEventListener('change', async () => {
      const files = [...input.files]
      input.value = ''
      for (const file of files) await this.#upload(field, entry, file, progress)
    })
    this.#fields.set(field.key, entry)
    return el('div', { class: 'field', 'data-key': field.key },
      el('label', { for: id }, title), why, help,
      el('span', { class: 'file' }, input), progress, entry.photos, entry.error, entry.status)
  }

  // -- saving --------------------------------------------------------------------------------------

  /** The contact's token, starting the contact if there is none yet (once, however many ask). */
  #contact () {
    if (this.#token) return Promise.resolve(this.#token)
    this.#starting ??= (async () => {
      const result = (await api.call(START, { tenant: this.tenant, locale: this.#form.locale })).startContact
      if (result.__typename !== 'ContactSession') throw failure(result)
      this.#adopt(result.token, result.selfServiceUrl)
      this.dispatchEvent(new CustomEvent('rapidly-started', { bubbles: true }))
      return result.token
    })().finally(() => { this.#starting = null })
    return this.#starting
  }

  #adopt (token, selfServiceUrl) {
    this.#token = token
    this.#stored(token)
    if (selfServiceUrl) {
      this.#mine.replaceChildren(el('a', { href: selfServiceUrl, target: '_blank', rel: 'noopener noreferrer' }, this.#t.myData))
    }
    this.#events?.close()
    this.#events = api.subscribe(EVENTS, token, {
      onNext: (data) => this.#onEvent(data?.myEvents?.kind),
      onReconnect: () => this.#catchUp()
    })
    this.#catchUp()
  }

  #forget () {
    this.#events?.close()
    this.#events = null
    this.#token = null
    this.#stored(null)
    this.#mine.replaceChildren(this.#t.nothingStored)
  }

  async #save (key, value) {
    const token = await this.#contact()
    const result = (await api.call(SAVE, { key, value }, token)).saveField
    if (result.__typename === 'FieldSaved') return {}
    if (result.__typename === 'InputInvalidError') return { invalid: result.errors }
    if (result.__typename === 'AuthError' && this.#token === token) {
      // The contact is gone (erased, expired): what is typed now starts a new one.
      this.#forget()
      this.#live.textContent = this.#t.restarted
      throw new Unavailable()
    }
    throw failure(result)
  }

  #showState ({ key, state, errors }) {
    const entry = this.#fields.get(key)
    if (!entry) return
    const t = this.#t
    const focused = this.shadowRoot.activeElement === entry.control
    entry.errors = errors
    const shownError = (state === 'invalid' && !focused) || state === 'failed'
    entry.status.textContent = state === 'invalid' ? (focused ? t.notYet : '') : t[state] || ''
    entry.status.dataset.state = state
    entry.error.textContent = shownError && errors?.length ? this.#errorText(errors[0], entry.field) : ''
    entry.control?.setAttribute('aria-invalid', String(state === 'invalid' || state === 'failed'))
    if (state === 'saved') this.dispatchEvent(new CustomEvent('rapidly-saved', { bubbles: true, detail: { key } }))
    if (state === 'retrying' && !this.#troubled) {
      this.#troubled = true
      this.#live.textContent = t.announceRetrying
    }
    const settled = !this.#queue.unsaved
    if (settled && this.#troubled) {
      this.#troubled = false
      this.#live.textContent = t.announceRecovered
    }
    if (settled && this.#doneAsked) this.#doneSummary()
  }

  #errorText (error, field) {
    const template = this.#t.errors[error.code]
    return template ? fill(template, { max: field?.limits?.maxLength ?? '' }) : error.message
  }

  async #done () {
    this.#doneAsked = true
    this.#queue.flush()
    for (const [key, entry] of this.#fields) {
      if (this.#queue.state(key) === 'invalid') entry.error.textContent = this.#errorText(entry.errors[0], entry.field)
    }
    if (this.#queue.unsaved) this.#doneNote.textContent = this.#t.saving
    else this.#doneSummary()
  }

  #doneSummary () {
    this.#doneAsked = false
    const empty = (value) => value === null || value === '' || value === false || (Array.isArray(value) && !value.length)
    const missing = [...this.#fields.values()].filter(({ field, read }) => field.required && empty(read()))
    this.#doneNote.textContent = missing.length
      ? fill(this.#t.missing, { fields: missing.map(({ field }) => field.label).join(', ') })
      : fill(this.#t.allSaved, { company: this.#form.tenantName })
  }

  // -- photos --------------------------------------------------------------------------------------

  async #upload (field, entry, file, progress) {
    const t = this.#t
    this.#uploading += 1
    progress.hidden = false
    progress.value = 0
    entry.error.textContent = ''
    const report = (fraction) => {
      progress.value = fraction
      entry.status.textContent = fill(t.uploading, { percent: Math.round(fraction * 100) })
    }
    report(0)
    try {
      const token = await this.#contact()
      const result = (await api.upload(UPLOAD, { fieldKey: field.key }, 'file', file, token, report)).uploadMedia
      if (result.__typename === 'InputInvalidError') entry.error.textContent = this.#errorText(result.errors[0], field)
      else if (result.__typename !== 'MediaUploaded') throw failure(result)
      else {
        entry.status.textContent = t.photoAdded
        await this.#refreshMedia()
      }
    } catch (error) {
      entry.status.textContent = ''
      entry.error.textContent = error instanceof Unavailable ? t.errors.unavailable : error.message
    } finally {
      this.#uploading -= 1
      progress.hidden = true
    }
  }

  async #refreshMedia () {
    if (!this.#token) return
    const me = (await api.call(MEDIA, {}, this.#token).catch(() => ({}))).me
    if (!me) return
    for (const entry of this.#fields.values()) {
      if (!entry.photos) continue
      const mine = me.media.filter((media) => media.fieldKey === entry.field.key)
      entry.photos.replaceChildren(...mine.map((media, i) => el('li', { 'data-id': media.id },
        el('img', { src: media.url, alt: fill(this.#t.photoAlt, { n: i + 1, label: entry.field.label }), width: 96, height: 96 }))))
    }
  }

  #continueView () {
    const t = this.#t
    this.#qr = el('div', { class: 'qr' })
    this.#linkNote = el('p', { class: 'note', role: 'status' })
    return el('section', { class: 'continue', 'aria-labelledby': 'rf-continue' },
      el('h3', { id: 'rf-continue' }, t.continueHeading),
      el('p', {}, t.continueIntro),
      el('div', { class: 'actions' },
        el('button', { type: 'button', onclick: () => this.#showQr() }, t.showQr),
        el('button', { type: 'button', onclick: () => this.#sendLink('EMAIL') }, t.sendEmail),
        el('button', { type: 'button', onclick: () => this.#sendLink('SMS') }, t.sendSms)),
      this.#qr, this.#linkNote)
  }

  async #showQr () {
    await this.#attempt(async () => {
      const result = (await api.call(SHOW_QR, {}, await this.#contact())).createContinueLink
      if (result.__typename !== 'ContinueLink') throw failure(result)
      const until = new Date(result.expiresAt).toLocaleTimeString(this.#form.locale, { hour: '2-digit', minute: '2-digit' })
      this.#qr.replaceChildren(safeSvg(result.qrSvg, this.#t.qrAlt), el('p', {}, fill(this.#t.qrValidUntil, { time: until })))
      this.#linkNote.textContent = ''
    })
  }

  async #sendLink (channel) {
    await this.#attempt(async () => {
      const result = (await api.call(SEND_LINK, { channel }, await this.#contact())).sendContinueLink
      if (result.__typename === 'InputInvalidError') this.#linkNote.textContent = this.#errorText(result.errors[0])
      else if (result.__typename !== 'LinkSent') throw failure(result)
      else this.#linkNote.textContent = fill(this.#t.linkSent, { recipient: result.maskedRecipient })
    })
  }

  /** A button's action; a failure is said in the continue section's note. */
  async #attempt (action) {
    try {
      await action()
    } catch (error) {
      const code = error instanceof Unavailable ? (error.retryAfter > 2 ? 'rate_limited' : 'unavailable') : null
      this.#linkNote.textContent = code ? this.#t.errors[code] : error.message
    }
  }

  // -- chat and live events ------------------------------------------------------------------------

  #chatView () {
    const t = this.#t
    this.#chatList = el('ol', { class: 'chat', tabindex: 0, 'aria-labelledby': 'rf-chat' })
    this.#chatInput = el('textarea', { id: 'rf-chat-input', rows: 2, maxlength: 4000 })
    this.#chatError = el('p', { class: 'error', role: 'alert' })
    const send = (event) => { event.preventDefault(); this.#sendChat() }
    return el('section', { class: 'chat-panel', 'aria-labelledby': 'rf-chat' },
      el('h3', { id: 'rf-chat' }, fill(t.chatHeading, { company: this.#form.tenantName })),
      this.#chatList,
      el('form', { onsubmit: send },
        el('label', { for: 'rf-chat-input' }, t.chatLabel), this.#chatInput, this.#chatError,
        el('button', { type: 'submit' }, t.send)))
  }

  #message (node) {
    if (this.#chatSeen.has(node.id)) return null
    this.#chatSeen.add(node.id)
    const mine = node.author === 'CONTACT'
    const at = new Date(node.createdAt)
    return el('li', { class: mine ? 'mine' : 'theirs' },
      el('span', { class: 'who' }, mine ? this.#t.you : this.#form.tenantName, ' ',
        el('time', { datetime: node.createdAt }, at.toLocaleTimeString(this.#form.locale, { hour: '2-digit', minute: '2-digit' }))),
      el('span', { class: 'body' }, node.body))
  }

  async #loadChat () {
    const token = this.#token
    let fromStaff = 0
    for (let more = true; more && token === this.#token;) {
      const page = (await api.call(CHAT, { after: this.#chatCursor }, token)).me?.chatMessages
      if (!page) return
      for (const { node } of page.edges) {
        const item = this.#message(node)
        if (item) { this.#chatList.append(item); fromStaff += node.author === 'STAFF' }
      }
      this.#chatCursor = page.pageInfo.endCursor ?? this.#chatCursor
      more = page.pageInfo.hasNextPage
    }
    if (fromStaff) {
      this.#live.textContent = fill(this.#t.newMessage, { company: this.#form.tenantName })
      await api.call(READ_CHAT, {}, token).catch(() => {})
    }
  }

  async #sendChat () {
    const body = this.#chatInput.value.trim()
    if (!body) return
    this.#chatError.textContent = ''
    try {
      const result = (await api.call(SEND_CHAT, { body }, await this.#contact())).sendChatMessage
      if (result.__typename === 'InputInvalidError') {
        this.#chatError.textContent = this.#errorText(result.errors[0])
        return
      }
      if (result.__typename !== 'ChatMessageSent') throw failure(result)
      const item = this.#message(result.chatMessage)
      if (item) this.#chatList.append(item)
      this.#chatInput.value = ''
    } catch (error) {
      this.#chatError.textContent = error instanceof Unavailable ? this.#t.errors.unavailable : error.message
    }
  }

  /** What changed while no events could arrive (a reconnect, a reload). */
  #catchUp () {
    this.#refreshMedia()
    this.#loadChat().catch(() => {})
  }

  #onEvent (kind) {
    if (kind === 'MEDIA_ADDED') this.#refreshMedia()
    else if (kind === 'CHAT_MESSAGE') this.#loadChat().catch(() => {})
    else if (kind === 'DELETED') this.#erased()
  }

  /** The contact was erased (from the end user's own page, or by the company): start afresh. */
  #erased () {
    this.#queue.clear()
    this.#forget()
    for (const entry of this.#fields.values()) {
      entry.write(null)
      entry.photos?.replaceChildren()
      entry.status.textContent = entry.error.textContent = ''
    }
    this.#chatList.replaceChildren()
    this.#chatSeen.clear()
    this.#chatCursor = null
    this.#qr?.replaceChildren()
    this.#live.textContent = this.#t.erased
    this.#doneNote.textContent = this.#t.erased
    this.dispatchEvent(new CustomEvent('rapidly-erased', { bubbles: true }))
  }
}

if (!customElements.get('rapidly-form')) customElements.define('rapidly-form', RapidlyForm)

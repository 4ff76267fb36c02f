// The staff console at /console: Rapidly's public GraphQL API in the browser, as any client of it
// would use it (no private endpoint), so it doubles as the reference client.
//
// The staff token is kept in this tab's sessionStorage: a reload keeps the session, closing the tab
// ends it, and "Sign out" revokes it on the server too. It is never put in a URL, a cookie or a log.
// No cookie means no CSRF: the browser never sends the token by itself, only this code does. Against
// XSS the console relies on never letting any script in: a CSP of `script-src 'self'` without
// 'unsafe-inline', no third-party code, and every value and message put in the page as text.
// Page titles name no one: they end up in the browser's history.

import { el } from '../lib/dom.js'
import { Api, FAILED, LIMITED, Refused, Unavailable } from '../lib/graphql.js'
import { LOCALES, fill, pickLocale, textsBeside } from '../lib/i18n.js'
import { ContactList, ContactPage } from './contacts.js'
import { invitationScreen } from './invitation.js'
import { Notifications } from './notifications.js'
import { Account } from './account.js'
import { passkeyForm, passkeyProblem, signInWithPasskey, supported as passkeysSupported } from './passkeys.js'
import { Settings } from './settings.js'
import { Staff } from './staff.js'

const api = new Api(new URL('/graphql', location.origin))
const TOKEN_KEY = 'rapidly-console-token'
const LOCALE_KEY = 'rapidly-console-locale' // a preference, not personal data
// An invitation's token, taken out of the address (`/console/invite/{token}`) until it is used.
const INVITATION_KEY = 'rapidly-console-invitation'
const INVITATION_PATH = /^\/console\/invite\/([^/]+)$/
// A console left open checks its session this often (and when it is looked at again), so that one
// ended elsewhere (a password reset) stops showing anything.
const SESSION_EVERY_MS = 60_000
const LANGUAGE_NAMES = { fi: 'Suomi', sv: 'Svenska', en: 'English' }

const LOGIN = `mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) {
  ... on LoginSuccess { token mustAddPasskey } ${LIMITED} ${FAILED} } }`
const LOGOUT = 'mutation Logout { logout }'
const VIEWER = `query Viewer($locale: String) { viewer { id email locale role unreadNotifications tenant { name retentionDays
  allowedOrigins requirePasskey messageChannels { event channels } } } fields(locale: $locale) { key label kind choices { value label } } }`
const UNREAD = 'query Unread { viewer { unreadNotifications } }'
const EVENTS = 'subscription Events { contactEvents { kind contactId at } }'

class Console {
  #t; #locale; #token; #viewer; #labels = new Map(); #events = null; #view = null; #live; #badge; #main; #watch

  constructor (root) { this.root = root }

  async start () {
    const invited = INVITATION_PATH.exec(location.pathname)
    if (invited) { // before anything else can fail: out of the address bar and the history
      history.replaceState(null, '', '/console')
      sessionStorage.setItem(INVITATION_KEY, invited[1])
    }
    await this.#speak(pickLocale(localStorage.getItem(LOCALE_KEY), navigator.language) || 'en')
    this.#token = sessionStorage.getItem(TOKEN_KEY)
    addEventListener('hashchange', () => this.#route())
    document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && this.#checkSession())
    if (sessionStorage.getItem(INVITATION_KEY)) await this.#join()
    else if (this.#token) await this.#enter()
    else this.#signIn()
  }

  /** The invitation's screen; accepted, the new staff member is signed in. */
  async #join () {
    const token = sessionStorage.getItem(INVITATION_KEY)
    const leave = () => { sessionStorage.removeItem(INVITATION_KEY); this.#signIn() }
    const joined = async (session) => {
      sessionStorage.removeItem(INVITATION_KEY)
      await this.#started(session)
    }
    document.title = this.#t.title
    this.root.replaceChildren(await invitationScreen(api, this.#t, token, { locale: this.#locale, languages: this.#languages(), joined, signIn: leave }))
    this.root.querySelector('h1')?.focus({ preventScroll: true }) // a screen reader starts at the invitation
  }

  async #speak (locale) {
    this.#locale = locale
    this.#t = await textsBeside(import.meta.url, locale)
    document.documentElement.lang = locale
  }

  // -- the session ---------------------------------------------------------------------------------

  #signIn (notice = '') {
    const t = this.#t
    this.#events?.close()
    clearInterval(this.#watch)
    this.#view?.close?.()
    this.#events = this.#token = this.#viewer = this.#view = null
    sessionStorage.removeItem(TOKEN_KEY)
    document.title = t.title
    const email = el('input', { id: 'email', type: 'email', autocomplete: 'username', required: true })
    const password = el('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true })
    const problem = el('p', { class: 'error', role: 'alert' }, notice)
    const refused = (error) => error instanceof Unavailable && error.retryAfter > 2
      ? fill(t.tooManyAttempts, { seconds: error.retryAfter })
      : error instanceof Unavailable ? t.unavailable : t.errors[error.code] || t.wrongCredentials
    const submit = async (event) => {
      event.preventDefault()
      problem.textContent = ''
      try {
        const answer = await api.mutate(LOGIN, { email: email.value, password: password.value }, null, 'LoginSuccess')
        await this.#started(answer)
      } catch (error) {
        problem.textContent = refused(error)
        password.value = ''
        email.focus()
      }
    }
    const withPasskey = async () => {
      problem.textContent = ''
      try {
        await this.#started(await signInWithPasskey(api))
      } catch (error) {
        problem.textContent = passkeyProblem(t, error, refused)
      }
    }
    this.root.replaceChildren(el('main', { class: 'sign-in' },
      el('h1', {}, t.signInHeading),
      el('form', { onsubmit: submit },
        el('label', { for: 'email' }, t.email), email,
        el('label', { for: 'password' }, t.password), password,
        problem,
        el('button', { type: 'submit', class: 'primary' }, t.signIn)),
      passkeysSupported() ? el('p', {}, el('button', { type: 'button', onclick: withPasskey }, t.signInWithPasskey)) : null,
      this.#languages()))
    email.focus()
  }

  /** A session just begun: the console, or first a passkey where the company requires one. */
  async #started ({ token, mustAddPasskey }) {
    this.#token = token
    sessionStorage.setItem(TOKEN_KEY, token)
    if (mustAddPasskey) this.#enrol()
    else await this.#enter()
  }

  /** The company requires a passkey and this staff member has none: adding one is all they may do. */
  #enrol () {
    const t = this.#t
    const mutate = (query, variables, success) => api.mutate(query, variables, this.#token, success)
    const explain = (problem) => this.explain(problem)
    const form = passkeysSupported() ? passkeyForm(t, mutate, explain, () => this.#enter()) : el('p', { role: 'alert' }, t.passkeyUnsupported)
    this.root.replaceChildren(el('main', { class: 'sign-in' },
      el('h1', { tabindex: -1 }, t.addPasskeyHeading),
      el('p', {}, t.passkeyRequiredHelp),
      form,
      el('p', {}, el('button', { type: 'button', onclick: () => this.#signOut() }, t.signOut))))
    this.root.querySelector('h1').focus({ preventScroll: true })
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
    if (!localStorage.getItem(LOCALE_KEY) && data.viewer.locale !== this.#locale && LOCALES.includes(data.viewer.locale)) {
      await this.#speak(data.viewer.locale) // the staff member's own language, unless they chose one here
      return this.#enter()
    }
    this.#viewer = data.viewer
    this.#labels = new Map(data.fields.map((field) => [field.key, field]))
    this.#shell()
    this.#events?.close()
    this.#events = api.subscribe(EVENTS, this.#token, {
      onNext: (event) => event?.contactEvents && this.#onEvent(event.contactEvents),
      onReady: () => this.#view?.refresh?.().catch(() => {}), // what was missed before the stream was taken
      onEnd: () => this.#checkSession()
    })
    clearInterval(this.#watch)
    this.#watch = setInterval(() => this.#checkSession(), SESSION_EVERY_MS)
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
      if (error instanceof Refused && !['NotFoundError', 'InputInvalid'].includes(error.code)) await this.#checkSession()
      throw error
    }
  }

  async #checkSession () {
    if (!this.#token) return
    const viewer = await api.call(UNREAD, {}, this.#token).then((data) => data.viewer, (error) => (error instanceof Unavailable ? true : null))
    if (!viewer && this.#token) this.#signIn(this.#t.sessionEnded)
    else if (viewer?.unreadNotifications !== undefined) this.#showUnread(viewer.unreadNotifications)
  }

  // -- the frame -----------------------------------------------------------------------------------

  #shell () {
    const t = this.#t
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
          link('#/settings', t.settings),
          this.#viewer.role === 'ADMIN' ? link('#/staff', t.staff) : null,
          link('#/account', t.myAccount)),
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
    await this.#speak(locale)
    if (sessionStorage.getItem(INVITATION_KEY)) await this.#join()
    else if (this.#token) await this.#enter()
    else this.#signIn()
    document.getElementById('language')?.focus()
  }

  #showUnread (count) {
    this.#badge.textContent = count ? fill(this.#t.unread, { count: count >= 1000 ? '999+' : count }) : ''
  }

  /** Show the view the address names; its heading takes the focus, so a screen reader starts there. */
  #route () {
    if (!this.#viewer) return
    const [, name, id] = location.hash.split('/')
    let contactId = null
    try { contactId = id && decodeURIComponent(id) } catch { contactId = '-' } // a malformed address: no such contact
    this.#view?.close?.()
    const views = { notifications: Notifications, settings: Settings, staff: Staff, account: Account }
    const view = this.#view = name === 'contacts' && contactId ? new ContactPage(this, contactId) : new (views[name] || ContactList)(this)
    document.title = `${view.title} – ${this.#t.title}`
    for (const a of this.root.querySelectorAll('nav a')) {
      if (a.getAttribute('href') === `#/${name || 'contacts'}`) a.setAttribute('aria-current', 'page')
      else a.removeAttribute('aria-current')
    }
    this.#main.replaceChildren(view.element)
    view.load().catch((error) => view.problem?.(this.explain(error)))
  }

  #onEvent ({ kind, contactId, at }) {
    this.#view?.onEvent?.(kind, contactId, at)
    if (kind !== 'FIELD_SAVED') this.refreshUnread()
  }

  // -- what the views use --------------------------------------------------------------------------

  get t () { return this.#t }
  get locale () { return this.#locale }
  get viewer () { return this.#viewer }
  /** Read the viewer again and redraw (their role changed), or sign out if the session is gone. */
  reenter () { return this.#enter() }
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

  /** A problem in the reader's language: the server away, an input refused (by its code), or as said. */
  explain (problem) {
    if (problem instanceof Unavailable) return this.#t.unavailable
    const code = problem.errors?.[0]?.code ?? problem.code
    return this.#t.errors[code] || problem.errors?.[0]?.message || problem.message
  }

  event (code) { return this.#t.events[code] || code }

  async refreshUnread () {
    const data = await this.#call(UNREAD).catch(() => null)
    if (data?.viewer) this.#showUnread(data.viewer.unreadNotifications)
  }
}

new Console(document.getElementById('app')).start()

// My account: how I sign in (my passkeys) and how I am reached (a mobile number of my own, confirmed
// by a code texted to it, and for each message to staff: email, text message, both or none).

import { el } from '../lib/dom.js'
import { FAILED, INVALID, LIMITED, Unavailable } from '../lib/graphql.js'
import { fill } from '../lib/i18n.js'
import { confirmed, frame } from './frame.js'
import { passkeyForm, supported } from './passkeys.js'

const CHANNELS_OF_MINE = 'messageChannels { event channels own }'
const MINE = `query MyAccount { viewer { passkeys { id name createdAt lastUsedAt } passkeyOnly
  smsNumber smsNumberWaiting { number codeExpiresAt sent problem } ${CHANNELS_OF_MINE} } }`
const REMOVE_PASSKEY = `mutation RemovePasskey($id: ID!) { removePasskey(id: $id) { ... on PasskeyRemoved { id } ${FAILED} } }`
const SEND_CODE = `mutation SendCode($number: String!) { startSmsNumberCheck(number: $number) {
  ... on SmsCodeSent { number } ${INVALID} ${LIMITED} ${FAILED} } }`
const CONFIRM = `mutation ConfirmNumber($code: String!) { verifySmsNumber(code: $code) {
  ... on SmsNumberVerified { staff { smsNumber } } ${INVALID} ${FAILED} } }`
const PASSKEY_ONLY = `mutation PasskeyOnly($on: Boolean!) { setPasskeyOnly(on: $on) {
  ... on PasskeyOnlyChanged { staff { passkeyOnly } } ${INVALID} ${FAILED} } }`
const REMOVE_NUMBER = 'mutation RemoveNumber { removeSmsNumber { smsNumber } }'
const CHOOSE = `mutation MyChannels($event: String!, $channels: [Channel!]) { setMyMessageChannels(event: $event, channels: $channels) {
  ... on MyMessageChannelsChanged { staff { ${CHANNELS_OF_MINE} } } ${INVALID} ${FAILED} } }`
export const MAX_NUMBER_LENGTH = 40
const CHANNELS = ['EMAIL', 'SMS']

/** The code of a text message, offered by the browser where it can read one meant for this site
 *  (WebOTP, the message's last line); null where it cannot, or when `signal` aborts. */
export async function codeFromTheMessage (signal) {
  if (!('OTPCredential' in globalThis) || !navigator.credentials) return null
  try {
    return (await navigator.credentials.get({ otp: { transport: ['sms'] }, signal }))?.code ?? null
  } catch {
    return null
  }
}

export class Account {
  constructor (app) {
    const t = (this.app = app).t
    this.title = t.myAccount
    const { element, note } = frame(t.myAccount)
    Object.assign(this, { element, note })
    this.list = el('ul', { class: 'passkeys', 'aria-labelledby': 'passkeys-heading' })
    this.only = el('input', { type: 'checkbox', id: 'passkey-only', 'aria-describedby': 'passkey-only-help' })
    this.only.addEventListener('change', () => this.#passkeyOnly(this.only.checked))
    this.passkeyNote = el('p', { class: 'note', role: 'status' })
    this.number = el('div')
    this.channels = el('div')
    this.reachNote = el('p', { class: 'note', role: 'status' })
    this.waiting = new AbortController()
    /** Changes go one after another, each answered and redrawn before the next is sent. */
    this.changes = Promise.resolve()
    const explain = (problem) => app.explain(problem)
    const mutate = (query, variables, success) => app.mutate(query, variables, success)
    element.append(
      el('p', {}, fill(t.signedInAs, { email: app.viewer.email })),
      el('section', { 'aria-labelledby': 'passkeys-heading' },
        el('h2', { id: 'passkeys-heading' }, t.passkeys),
        el('p', { class: 'quiet' }, t.passkeysHelp),
        this.list,
        supported()
          ? passkeyForm(t, mutate, explain, async (passkey) => {
            app.announce(fill(t.passkeyAdded, { name: passkey.name }))
            await this.load()
          })
          : el('p', {}, t.passkeyUnsupported),
        el('p', { class: 'choice' }, this.only, el('label', { for: 'passkey-only' }, t.passkeyOnly)),
        el('p', { id: 'passkey-only-help', class: 'quiet' }, t.passkeyOnlyHelp),
        this.passkeyNote),
      el('section', { 'aria-labelledby': 'reach-heading' },
        el('h2', { id: 'reach-heading' }, t.messagesToMe),
        el('p', { class: 'quiet' }, t.messagesToMeHelp),
        this.number, this.channels, this.reachNote))
  }

  problem (text) { this.note.textContent = text }
  close () { this.closed = true; this.waiting.abort() }

  async load () {
    const data = await this.app.call(MINE)
    if (this.closed) return
    const t = this.app.t
    const { passkeys, passkeyOnly, smsNumber, smsNumberWaiting, messageChannels } = data.viewer
    this.only.checked = passkeyOnly
    this.list.replaceChildren(...passkeys.map((passkey) => el('li', {},
      fill(t.passkeyListed, {
        name: passkey.name,
        added: this.app.when(passkey.createdAt),
        used: passkey.lastUsedAt ? this.app.when(passkey.lastUsedAt) : t.never
      }), ' ',
      el('button', { type: 'button', class: 'danger', onclick: () => this.#removePasskey(passkey) }, fill(t.removePasskey, { name: passkey.name })))))
    if (!passkeys.length) this.list.replaceChildren(el('li', { class: 'quiet' }, t.noPasskeys))
    this.#showNumber(smsNumber, smsNumberWaiting)
    this.#showChannels(messageChannels, smsNumber)
  }

  #showNumber (smsNumber, waiting) {
    const t = this.app.t
    // What is being typed survives a redraw made for another change.
    const typed = (id) => this.number.querySelector(`#${id}`)?.value ?? ''
    const number = el('input', { id: 'sms-number', type: 'tel', autocomplete: 'tel', maxlength: MAX_NUMBER_LENGTH, required: true, value: typed('sms-number'), 'aria-describedby': 'sms-number-help' })
    const sendCode = (event) => { event.preventDefault(); this.#sendCode(number) }
    const parts = [
      smsNumber
        ? el('p', {}, fill(t.smsNumberIs, { number: smsNumber }), ' ',
          el('button', { type: 'button', class: 'danger', onclick: () => this.#removeNumber(smsNumber) }, fill(t.removeNumber, { number: smsNumber })))
        : el('p', {}, t.noSmsNumber),
      el('form', { onsubmit: sendCode },
        el('label', { for: 'sms-number' }, smsNumber ? t.otherSmsNumber : t.smsNumber), number,
        el('p', { id: 'sms-number-help', class: 'quiet' }, t.smsNumberHelp),
        el('button', { type: 'submit' }, t.sendCode))
    ]
    if (waiting && ['FAILED', 'SUPPRESSED'].includes(waiting.sent)) {
      parts.push(el('p', { class: 'error' }, fill(t.codeNotSent, { number: waiting.number, why: t.textNotSent[waiting.problem] || waiting.problem || '' })))
    } else if (waiting) {
      const code = el('input', { id: 'sms-code', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 12, required: true, value: typed('sms-code'), 'aria-describedby': 'sms-code-help' })
      const confirm = (event) => { event.preventDefault(); this.#confirm(code.value) }
      parts.push(el('form', { onsubmit: confirm },
        el('label', { for: 'sms-code' }, t.smsCode), code,
        el('p', { id: 'sms-code-help', class: 'quiet' }, fill(waiting.codeExpiresAt ? t.codeSent : t.codeOnItsWay, { number: waiting.number })),
        el('button', { type: 'submit' }, t.confirmNumber)))
      this.waiting.abort()
      this.waiting = new AbortController()
      codeFromTheMessage(this.waiting.signal).then((offered) => { if (offered && code.isConnected) code.value = offered })
    }
    this.number.replaceChildren(...parts)
  }

  #showChannels (channels, smsNumber) {
    const t = this.app.t
    this.channels.replaceChildren(...channels.map(({ event, channels: chosen, own }) => {
      const boxes = CHANNELS.map((channel) => el('input', {
        type: 'checkbox',
        id: `my-channel-${event}-${channel}`,
        checked: chosen.includes(channel),
        disabled: channel === 'SMS' && !smsNumber && !chosen.includes('SMS'),
        'aria-describedby': channel === 'SMS' && !smsNumber ? 'sms-needs-number' : null,
        // What the boxes say now, not what was drawn: a second change made before the redraw keeps the first.
        onchange: (change) => this.#choose(event, CHANNELS.filter((_, i) => boxes[i].checked), `#${change.target.id}`)
      }))
      return el('fieldset', {},
        el('legend', {}, this.app.event(event)),
        boxes.map((box, i) => el('span', { class: 'choice' }, box, el('label', { for: box.id }, t.channel[CHANNELS[i]]))),
        own
          ? el('button', { type: 'button', id: `company-choice-${event}`, onclick: () => this.#choose(event, null, `#my-channel-${event}-EMAIL`) },
            fill(t.useCompanyChoice, { event: this.app.event(event) }))
          : el('span', { class: 'quiet' }, ` (${t.asCompanyChose})`))
    }))
    if (!smsNumber) this.channels.append(el('p', { id: 'sms-needs-number', class: 'quiet' }, t.smsNeedsNumber))
  }

  /** One change, after those made before it: its outcome said in the note, the screen read again,
   *  the focus put back on `focus`. Resolves true when it was made. */
  #change (mutation, variables, success, done, focus) {
    const made = this.changes.then(async () => {
      this.reachNote.textContent = ''
      try {
        const changed = await this.app.mutate(mutation, variables, success)
        if (changed.invalid) return void (this.reachNote.textContent = this.app.explain(changed.invalid[0]))
        await this.load()
        this.app.announce(typeof done === 'function' ? done(changed) : done)
        if (focus) this.element.querySelector(focus)?.focus()
        return true
      } catch (error) {
        this.reachNote.textContent = error instanceof Unavailable && error.retryAfter > 2
          ? fill(this.app.t.tooManyCodes, { minutes: Math.ceil(error.retryAfter / 60) })
          : this.app.explain(error)
      }
    })
    this.changes = made.catch(() => {})
    return made
  }

  async #sendCode (input) {
    const sent = await this.#change(SEND_CODE, { number: input.value }, 'SmsCodeSent', (answer) => fill(this.app.t.codeOnItsWay, { number: answer.number }), '#sms-code')
    if (sent) this.element.querySelector('#sms-number').value = ''
  }

  #confirm (code) {
    return this.#change(CONFIRM, { code }, 'SmsNumberVerified', (done) => fill(this.app.t.numberConfirmed, { number: done.staff.smsNumber }), '#sms-number')
  }

  #choose (event, channels, focus) {
    return this.#change(CHOOSE, { event, channels }, 'MyMessageChannelsChanged', this.app.t.saved, focus)
  }

  async #removeNumber (number) {
    const t = this.app.t
    if (!await confirmed(this.element, fill(t.removeNumberConfirm, { number }), t.removeYes, t.cancel)) return
    await this.#change(REMOVE_NUMBER, {}, null, t.numberRemoved, '#sms-number')
  }

  async #passkeyOnly (on) {
    const t = this.app.t
    this.passkeyNote.textContent = ''
    try {
      const changed = await this.app.mutate(PASSKEY_ONLY, { on }, 'PasskeyOnlyChanged')
      if (changed.invalid) this.passkeyNote.textContent = this.app.explain(changed.invalid[0])
      else this.app.announce(t.saved)
      this.only.checked = changed.invalid ? !on : changed.staff.passkeyOnly
    } catch (error) {
      this.only.checked = !on
      this.passkeyNote.textContent = this.app.explain(error)
    }
  }

  async #removePasskey (passkey) {
    const t = this.app.t
    this.note.textContent = ''
    if (!await confirmed(this.element, fill(t.removePasskeyConfirm, { name: passkey.name }), t.removeYes, t.cancel)) return
    try {
      await this.app.mutate(REMOVE_PASSKEY, { id: passkey.id }, 'PasskeyRemoved')
      this.app.announce(fill(t.passkeyRemoved, { name: passkey.name }))
      await this.load()
      this.element.querySelector('#passkey-name')?.focus()
    } catch (error) {
      this.note.textContent = this.app.explain(error)
    }
  }
}

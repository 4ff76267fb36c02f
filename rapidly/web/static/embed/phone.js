// "Continue on your phone": a QR code of a short-lived link to this contact (`createContinueLink`:
// nothing is sent), or the link sent to the contact's own saved email or phone (`sendContinueLink`).
// Loaded by form.js right after the fields are shown, for forms that take photos.

import { el, safeSvg } from '../lib/dom.js'
import { FAILED, INVALID, LIMITED } from '../lib/graphql.js'
import { fill } from './texts.js'

const SHOW_QR = `mutation ShowQr { createContinueLink { ... on ContinueLink { url qrSvg expiresAt } ${LIMITED} ${FAILED} } }`
const SEND_LINK = `mutation SendLink($channel: Channel!) { sendContinueLink(channel: $channel) {
  ... on LinkSent { maskedRecipient } ${INVALID} ${LIMITED} ${FAILED} } }`

export class Phone {
  /** `form` is what the section needs of the form: see `RapidlyForm#session`. */
  constructor (form) {
    const { t } = (this.form = form)
    this.qr = el('div', { class: 'qr' })
    this.note = el('p', { class: 'note', role: 'status' })
    const button = (text, action) => el('button', { type: 'button', onclick: () => this.#do(action) }, text)
    this.view = el('section', { class: 'continue', 'aria-labelledby': 'rf-continue' },
      el('h3', { id: 'rf-continue' }, t.continueHeading),
      el('p', {}, t.continueIntro),
      el('div', {},
        button(t.showQr, (token) => this.#showQr(token)),
        button(t.sendEmail, (token) => this.#send('EMAIL', token)),
        button(t.sendSms, (token) => this.#send('SMS', token))),
      this.qr, this.note)
  }

  /** A button's action, for the contact (started if need be); the outcome is said in the note. */
  async #do (action) {
    try {
      this.note.textContent = (await action(await this.form.contact())) || ''
    } catch (error) {
      this.note.textContent = this.form.explain(error)
    }
  }

  async #showQr (token) {
    const { api, t, clock } = this.form
    const link = await api.mutate(SHOW_QR, {}, token, 'ContinueLink')
    this.qr.replaceChildren(safeSvg(link.qrSvg, t.qrAlt), el('p', {}, fill(t.qrValidUntil, { time: clock(link.expiresAt) })))
  }

  async #send (channel, token) {
    const sent = await this.form.api.mutate(SEND_LINK, { channel }, token, 'LinkSent')
    return sent.invalid ? this.form.explain(sent.invalid[0]) : fill(this.form.t.linkSent, { recipient: sent.maskedRecipient })
  }
}

// Photos: uploading to the image fields (with progress) and showing what the contact has, and
// "continue on your phone": a QR code of a short-lived link to this contact (`createContinueLink`,
// nothing is sent) or the link sent to the contact's own saved email or phone (`sendContinueLink`).
// Loaded by form.js right after the fields are shown, for forms that take photos.

import { el, safeSvg } from '../lib/dom.js'
import { FAILED, INVALID, LIMITED, outcome } from '../lib/graphql.js'
import { fill } from '../lib/i18n.js'

const MEDIA = 'query Media { me { media { id fieldKey url } } }'
const UPLOAD = `mutation Upload($fieldKey: String!, $file: Upload!) {
  uploadMedia(fieldKey: $fieldKey, file: $file) { ${INVALID} ${FAILED} } }`
const SHOW_QR = `mutation ShowQr { createContinueLink { ... on ContinueLink { url qrSvg expiresAt } ${LIMITED} ${FAILED} } }`
const SEND_LINK = `mutation SendLink($channel: Channel!) { sendContinueLink(channel: $channel) {
  ... on LinkSent { maskedRecipient } ${INVALID} ${LIMITED} ${FAILED} } }`

export class Photos {
  /** Photos being sent now. */
  uploading = 0

  /** `form` is what this needs of the form: see `RapidlyForm#session`. */
  constructor (form) {
    const { t } = (this.form = form)
    this.qr = el('div', { class: 'qr' })
    this.note = el('p', { class: 'note', role: 'status' })
    const button = (text, action) => el('button', { type: 'button', onclick: () => this.#do(action) }, text)
    this.view = el('section', { class: 'continue', 'aria-labelledby': 'rapidly-continue' },
      el('h3', { id: 'rapidly-continue' }, t.continueHeading),
      el('p', {}, t.continueIntro),
      el('div', {},
        button(t.showQr, (token) => this.#showQr(token)),
        button(t.sendEmail, (token) => this.#send('EMAIL', token)),
        button(t.sendSms, (token) => this.#send('SMS', token))),
      this.qr, this.note)
  }

  /** Send one file to an image field (`entry`: the field, its status, error and photo list). */
  async upload ({ field, status, error }, file, progress) {
    const { api, t, explain } = this.form
    const report = (fraction) => {
      progress.value = fraction
      status.textContent = fill(t.uploading, { percent: Math.round(fraction * 100) })
    }
    this.uploading += 1
    progress.hidden = false
    error.textContent = ''
    report(0)
    try {
      const token = await this.form.contact()
      const result = outcome(await api.upload(UPLOAD, { fieldKey: field.key }, 'file', file, token, report), 'MediaUploaded')
      status.textContent = result.invalid ? '' : t.photoAdded
      if (result.invalid) error.textContent = explain(result.invalid[0], field)
      else await this.refresh()
    } catch (failure) {
      status.textContent = ''
      error.textContent = explain(failure)
    } finally {
      this.uploading -= 1
      progress.hidden = true
    }
  }

  /** Show the contact's photos, each under its field. */
  async refresh () {
    const { api, t, token, images } = this.form
    const me = token() && (await api.call(MEDIA, {}, token()).catch(() => ({}))).me
    if (!me) return
    for (const { field, photos } of images()) {
      const mine = me.media.filter((media) => media.fieldKey === field.key)
      photos.replaceChildren(...mine.map((media, i) => el('li', {},
        el('img', { src: media.url, alt: fill(t.photoAlt, { n: i + 1, label: field.label }), width: 96, height: 96 }))))
    }
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

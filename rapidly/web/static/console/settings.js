// The company's settings: shown to everyone, changed by its admins (each change on its own, at once),
// and the wording of its messages (wording.js).

import { el } from '../lib/dom.js'
import { FAILED, INVALID } from '../lib/graphql.js'
import { fill } from '../lib/i18n.js'
import { frame } from './frame.js'
import { WORDINGS, wordingEditor } from './wording.js'

const TENANT = 'allowedOrigins retentionDays requirePasskey messageChannels { event channels }'
const READ = `query Settings { viewer { tenant { ${TENANT} ${WORDINGS} } } }`
const CHANGED = `... on CompanySettingsChanged { tenant { ${TENANT} } } ${INVALID} ${FAILED}`
const ADD_ORIGIN = `mutation AddOrigin($origin: String!) { addAllowedOrigin(origin: $origin) { ${CHANGED} } }`
const REMOVE_ORIGIN = `mutation RemoveOrigin($origin: String!) { removeAllowedOrigin(origin: $origin) { ${CHANGED} } }`
const RETENTION = `mutation Retention($days: Int) { setRetentionDays(days: $days) { ${CHANGED} } }`
const REQUIRE_PASSKEY = `mutation RequirePasskey($required: Boolean!) { setPasskeyRequired(required: $required) { ${CHANGED} } }`
const CHANNELS = `mutation Channels($event: String!, $channels: [Channel!]!) {
  setMessageChannels(event: $event, channels: $channels) { ${CHANGED} } }`
/** Events whose channels are not the company's to choose, and those that reach staff (each staff
 *  member follows the company's choice until they make their own, in My account). */
export const ALWAYS_ON = new Set(['STAFF_INVITATION'])
export const TO_STAFF = new Set(['NEW_CONTACT', 'MEDIA_ADDED', 'CHAT_MESSAGE'])
export const MAX_RETENTION_DAYS = 3650

export class Settings {
  constructor (app) {
    const t = (this.app = app).t
    this.title = t.settings
    const { element, note } = frame(t.settings)
    Object.assign(this, { element, note })
    this.body = el('div')
    element.append(this.body)
  }

  problem (text) { this.note.textContent = text }
  close () { this.closed = true }

  async load () {
    const { messageWordings, ...tenant } = (await this.app.call(READ)).viewer.tenant
    if (this.closed) return
    // Built once: a change of another setting redraws the rest, not what is being written here.
    if (this.app.viewer.role === 'ADMIN') this.wording = wordingEditor(this.app, messageWordings)
    this.#show(tenant)
  }

  #show (tenant) {
    Object.assign(this.app.viewer.tenant, tenant)
    this.body.replaceChildren(...(this.app.viewer.role === 'ADMIN' ? [...this.#editors(tenant), this.wording] : [this.#summary(tenant)]))
  }

  #summary (tenant) {
    const t = this.app.t
    const row = (term, ...details) => [el('dt', {}, term), ...details.map((detail) => el('dd', {}, detail))]
    const channels = tenant.messageChannels.map(({ event, channels }) =>
      `${this.app.event(event)}: ${channels.map((c) => t.channel[c] || c).join(', ') || t.off}`)
    return el('dl', { class: 'settings' },
      row(t.keptFor, tenant.retentionDays ? fill(t.keptDays, { days: tenant.retentionDays }) : t.keptUntilErased),
      row(t.messageChannels, ...channels),
      row(t.origins, ...(tenant.allowedOrigins.length ? tenant.allowedOrigins : [t.noOrigins])),
      row(t.signInSetting, tenant.requirePasskey ? t.passkeyRequired : t.passwordOrPasskey))
  }

  #editors (tenant) {
    const t = this.app.t
    const section = (id, title, ...children) => el('section', { 'aria-labelledby': id, class: 'settings' }, el('h2', { id }, title), ...children)
    const status = () => el('p', { class: 'note', role: 'status' })

    const originNote = status()
    const origin = el('input', { id: 'origin', type: 'text', inputmode: 'url', autocomplete: 'off', maxlength: 300, 'aria-describedby': 'origin-help' })
    const origins = el('ul', { class: 'origins' }, tenant.allowedOrigins.map((listed) => el('li', {}, listed, ' ',
      el('button', { type: 'button', onclick: () => this.#change(REMOVE_ORIGIN, { origin: listed }, originNote, fill(t.originRemoved, { origin: listed }), '#origin') },
        fill(t.removeOrigin, { origin: listed })))))
    if (!tenant.allowedOrigins.length) origins.append(el('li', { class: 'quiet' }, t.noOrigins))
    const addOrigin = (event) => { event.preventDefault(); this.#change(ADD_ORIGIN, { origin: origin.value }, originNote, t.originAdded, '#origin') }

    const keptNote = status()
    const days = el('input', { id: 'retention', type: 'number', min: 1, max: MAX_RETENTION_DAYS, step: 1, value: tenant.retentionDays ?? '', 'aria-describedby': 'retention-help' })
    const keep = (event) => {
      event.preventDefault()
      const value = days.value.trim() === '' ? null : Number(days.value)
      this.#change(RETENTION, { days: value }, keptNote, t.saved, '#retention')
    }

    const channelNote = status()
    const events = tenant.messageChannels.filter(({ event }) => !ALWAYS_ON.has(event)).map(({ event, channels }) => {
      const boxes = ['EMAIL', 'SMS'].map((channel) =>
        el('input', { type: 'checkbox', id: `channel-${event}-${channel}`, value: channel, checked: channels.includes(channel), 'aria-describedby': TO_STAFF.has(event) ? 'staff-channels-help' : null }))
      const changed = (change) => this.#change(CHANNELS, { event, channels: boxes.filter((b) => b.checked).map((b) => b.value) },
        channelNote, t.saved, `#${change.target.id}`)
      return el('fieldset', { onchange: changed }, el('legend', {}, this.app.event(event)),
        boxes.map((box) => el('span', { class: 'choice' }, box, el('label', { for: box.id }, t.channel[box.value]))))
    })

    const passkeyNote = status()
    const required = el('input', { type: 'checkbox', id: 'require-passkey', checked: tenant.requirePasskey, 'aria-describedby': 'require-passkey-help' })
    required.addEventListener('change', async () => {
      await this.#change(REQUIRE_PASSKEY, { required: required.checked }, passkeyNote, t.saved, '#require-passkey')
      required.checked = this.app.viewer.tenant.requirePasskey // as it is, also when refused
    })

    return [
      section('origins-heading', t.origins,
        origins,
        el('form', { onsubmit: addOrigin },
          el('label', { for: 'origin' }, t.addOrigin), origin,
          el('p', { id: 'origin-help', class: 'quiet' }, t.originHelp),
          el('button', { type: 'submit' }, t.add)),
        originNote),
      section('retention-heading', t.keptFor,
        el('form', { onsubmit: keep },
          el('label', { for: 'retention' }, t.retentionDays), days,
          el('p', { id: 'retention-help', class: 'quiet' }, t.retentionHelp),
          el('button', { type: 'submit' }, t.save)),
        keptNote),
      section('channels-heading', t.messageChannels, ...events,
        el('p', { id: 'staff-channels-help', class: 'quiet' }, t.staffChannelsHelp), channelNote),
      section('sign-in-heading', t.signInSetting,
        el('p', { class: 'choice' }, required, el('label', { for: 'require-passkey' }, t.requirePasskey)),
        el('p', { id: 'require-passkey-help', class: 'quiet' }, t.requirePasskeyHelp),
        passkeyNote)
    ]
  }

  /** One change; its outcome said in `note` (`done` or why not), the screen redrawn from the answer,
   *  and the focus put back on `focus` (the control it came from is redrawn). */
  async #change (mutation, variables, note, done, focus = null) {
    note.textContent = ''
    try {
      const changed = await this.app.mutate(mutation, variables, 'CompanySettingsChanged')
      if (changed.invalid) return void (note.textContent = this.app.explain(changed.invalid[0]))
      this.#show(changed.tenant)
      this.app.announce(done)
      if (focus) this.body.querySelector(focus)?.focus()
    } catch (error) {
      note.textContent = this.app.explain(error)
    }
  }
}

// The wording of the company's messages, for its admins: one message, channel and language at a time,
// with a live preview rendered by the server's own sandbox (the one that sends), so what is shown is
// what goes out, the core's link and delete button included. Everything typed is shown as text.

import { el } from '../lib/dom.js'
import { FAILED, INVALID } from '../lib/graphql.js'

const KEY = '$event: String!, $channel: Channel!, $locale: String!'
const ARGS = 'event: $event, channel: $channel, locale: $locale'
const PREVIEW = `query MessagePreview(${KEY}, $subject: String, $body: String!) {
  messagePreview(${ARGS}, subject: $subject, body: $body) { ... on MessagePreview { subject text deleteButton } ${INVALID} ${FAILED} } }`
export const WORDINGS = 'messageWordings { event channel locale subject body custom }'
const CHANGED = `... on CompanySettingsChanged { tenant { ${WORDINGS} } } ${INVALID} ${FAILED}`
const SAVE = `mutation SetMessageWording(${KEY}, $subject: String, $body: String!) {
  setMessageWording(${ARGS}, subject: $subject, body: $body) { ${CHANGED} } }`
const RESET = `mutation ResetMessageWording(${KEY}) { resetMessageWording(${ARGS}) { ${CHANGED} } }`
const LANGUAGE_NAMES = { fi: 'Suomi', sv: 'Svenska', en: 'English' }
/** Typing pauses this long before the preview is asked for. */
export const PREVIEW_DELAY_MS = 400
export const MAX_BODY = 4000
export const MAX_SUBJECT = 200

/** The editor's section. `wordings` as `Tenant.messageWordings`; the preview follows what is typed. */
export function wordingEditor (app, wordings) {
  const t = app.t
  let all = wordings
  const events = [...new Set(all.map((w) => w.event))]
  const event = el('select', { id: 'wording-event' }, events.map((code) => el('option', { value: code }, app.event(code))))
  const channel = el('select', { id: 'wording-channel' })
  const locale = el('select', { id: 'wording-locale' },
    Object.entries(LANGUAGE_NAMES).map(([code, name]) => el('option', { value: code, lang: code, selected: code === app.locale }, name)))
  const subject = el('input', { id: 'wording-subject', type: 'text', maxlength: MAX_SUBJECT, autocomplete: 'off' })
  const subjectRow = el('p', { class: 'field' }, el('label', { for: 'wording-subject' }, t.wordingSubject), subject)
  const body = el('textarea', { id: 'wording-body', rows: 8, maxlength: MAX_BODY, 'aria-describedby': 'wording-help' })
  const which = el('p', { class: 'quiet', role: 'status' })
  const note = el('p', { class: 'note', role: 'status' })
  const shown = { subject: el('p', { class: 'preview-subject' }), text: el('pre', { class: 'preview-text' }), button: el('p', { class: 'preview-button' }) }
  const problem = el('p', { class: 'error', role: 'status' })
  let timer = null
  let asked = 0
  /** A refusal in words; a wording's own problem with the sandbox's reason (in English) after them. */
  const why = (problem) => problem.code === 'template_invalid' ? `${t.errors.template_invalid} ${problem.message}` : app.explain(problem)

  const current = () => all.find((w) => w.event === event.value && w.channel === channel.value && w.locale === locale.value)
  const key = () => ({ event: event.value, channel: channel.value, locale: locale.value })
  const words = () => ({ ...key(), subject: channel.value === 'EMAIL' ? subject.value : null, body: body.value })

  const showChannels = () => {
    const chosen = channel.value
    const channels = all.filter((w) => w.event === event.value && w.locale === locale.value).map((w) => w.channel)
    channel.replaceChildren(...channels.map((code) => el('option', { value: code, selected: code === chosen }, t.channel[code] || code)))
  }
  const showWording = () => {
    const wording = current()
    subject.value = wording?.subject ?? ''
    body.value = wording?.body ?? ''
    subjectRow.hidden = channel.value !== 'EMAIL'
    which.textContent = wording?.custom ? t.wordingCustom : t.wordingDefault
    note.textContent = ''
    preview()
  }
  /** The preview of what is typed now; an older answer arriving late is dropped. */
  const preview = async () => {
    const mine = ++asked
    try {
      const data = await app.call(PREVIEW, words())
      if (mine !== asked) return
      const answer = data.messagePreview
      if (answer.__typename === 'InputInvalidError') {
        problem.textContent = why(answer.errors[0])
        for (const part of Object.values(shown)) part.replaceChildren() // no message beside a refusal
        return
      }
      problem.textContent = ''
      shown.subject.textContent = answer.subject ? `${t.wordingSubject}: ${answer.subject}` : ''
      shown.text.textContent = answer.text
      shown.button.replaceChildren(...(answer.deleteButton ? [t.wordingButton, ' ', el('span', { class: 'button-sample' }, answer.deleteButton)] : []))
    } catch (error) {
      if (mine === asked) problem.textContent = app.explain(error)
    }
  }
  const typed = () => { clearTimeout(timer); timer = setTimeout(preview, PREVIEW_DELAY_MS) }
  const change = async (mutation, variables, done) => {
    note.textContent = ''
    try {
      const changed = await app.mutate(mutation, variables, 'CompanySettingsChanged')
      if (changed.invalid) return void (note.textContent = why(changed.invalid[0]))
      all = changed.tenant.messageWordings
      showWording()
      app.announce(done)
    } catch (error) {
      note.textContent = app.explain(error)
    }
  }
  const save = (submitted) => { submitted.preventDefault(); change(SAVE, words(), t.saved) }
  const reset = () => change(RESET, key(), t.wordingResetDone)

  event.addEventListener('change', () => { showChannels(); showWording() })
  channel.addEventListener('change', showWording)
  locale.addEventListener('change', showWording)
  subject.addEventListener('input', typed)
  body.addEventListener('input', typed)
  showChannels()
  showWording()

  return el('section', { 'aria-labelledby': 'wording-heading', class: 'settings wording' },
    el('h2', { id: 'wording-heading' }, t.wordingHeading),
    el('form', { onsubmit: save },
      el('p', { class: 'field' }, el('label', { for: 'wording-event' }, t.wordingMessage), event),
      el('p', { class: 'field' }, el('label', { for: 'wording-channel' }, t.wordingChannel), channel),
      el('p', { class: 'field' }, el('label', { for: 'wording-locale' }, t.language), locale),
      which,
      subjectRow,
      el('p', { class: 'field' }, el('label', { for: 'wording-body' }, t.wordingBody), body),
      el('p', { id: 'wording-help', class: 'quiet' }, t.wordingHelp),
      el('button', { type: 'submit' }, t.save), ' ',
      el('button', { type: 'button', onclick: reset }, t.wordingReset),
      note),
    el('section', { 'aria-labelledby': 'preview-heading', class: 'preview' },
      el('h3', { id: 'preview-heading' }, t.wordingPreview),
      problem, shown.subject, shown.text, shown.button))
}

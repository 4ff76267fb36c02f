// An invitation's screen (`/console/invite/{token}`): the invitee chooses a password and joins the
// company's staff, signed in at once. The token came out of the address before this shows.

import { el } from '../lib/dom.js'
import { FAILED, INVALID, LIMITED, Unavailable } from '../lib/graphql.js'
import { fill } from '../lib/i18n.js'

const INVITATION = 'query Invitation($token: String!) { staffInvitation(token: $token) { email role companyName } }'
const ACCEPT = `mutation Accept($token: String!, $password: String!, $locale: String) {
  acceptStaffInvitation(token: $token, password: $password, locale: $locale) { ... on LoginSuccess { token mustAddPasskey } ${INVALID} ${LIMITED} ${FAILED} } }`
export const MIN_PASSWORD = 12

/** The screen's element: the invitation, or why it no longer works. `joined(answer)` once accepted (its `LoginSuccess`);
 *  `signIn()` to leave it for the sign-in. The account speaks `locale`, the language chosen here. */
export async function invitationScreen (api, t, token, { locale, languages, joined, signIn }) {
  const heading = el('h1', { tabindex: -1 }, t.joinHeading)
  const problem = el('p', { class: 'error', role: 'alert' })
  const main = el('main', { class: 'sign-in' }, heading, problem)
  let invitation
  try {
    invitation = (await api.call(INVITATION, { token })).staffInvitation
  } catch (error) {
    problem.textContent = error instanceof Unavailable ? t.unavailable : t.invitationDead
  }
  if (!invitation) {
    problem.textContent ||= t.invitationDead
    main.append(el('button', { type: 'button', onclick: signIn }, t.signIn), languages)
    return main
  }
  heading.textContent = fill(t.joinCompany, { company: invitation.companyName })
  const password = el('input', { id: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: MIN_PASSWORD, 'aria-describedby': 'password-rule' })
  const again = el('input', { id: 'new-password-again', type: 'password', autocomplete: 'new-password', required: true })
  const submit = async (event) => {
    event.preventDefault()
    problem.textContent = ''
    if (password.value !== again.value) return void (problem.textContent = t.passwordsDiffer)
    try {
      const answer = await api.mutate(ACCEPT, { token, password: password.value, locale }, null, 'LoginSuccess')
      if (answer.invalid) return void (problem.textContent = t.errors[`${answer.invalid[0].field}_${answer.invalid[0].code}`] || answer.invalid[0].message)
      await joined(answer)
    } catch (error) {
      problem.textContent = error instanceof Unavailable ? t.unavailable : t.invitationDead
    }
  }
  main.append(
    el('p', {}, fill(t.joinAs, { email: invitation.email, role: t.roles[invitation.role] || invitation.role })),
    el('form', { onsubmit: submit },
      el('input', { type: 'email', autocomplete: 'username', value: invitation.email, hidden: true, readonly: true, 'aria-hidden': 'true', tabindex: -1 }),
      el('label', { for: 'new-password' }, t.newPassword), password,
      el('p', { id: 'password-rule', class: 'quiet' }, fill(t.passwordRule, { min: MIN_PASSWORD })),
      el('label', { for: 'new-password-again' }, t.newPasswordAgain), again,
      el('button', { type: 'submit', class: 'primary' }, t.join)),
    languages)
  return main
}

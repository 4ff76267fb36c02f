// Passkeys: signing in with one, and adding one (in "My account", account.js, and where the company
// requires one).
//
// The server's options are WebAuthn's JSON form, parsed by the browser itself
// (`PublicKeyCredential.parse...OptionsFromJSON`), and the browser's answer goes back as
// `credential.toJSON()`: no encoding of our own to get wrong.

import { el } from '../lib/dom.js'
import { FAILED, INVALID, LIMITED } from '../lib/graphql.js'

const OPTIONS = `... on PasskeyOptions { options } ${INVALID} ${LIMITED} ${FAILED}`
const SIGN_IN_OPTIONS = `mutation PasskeySignInOptions { passkeySignInOptions { ${OPTIONS} } }`
const SIGN_IN = `mutation SignInWithPasskey($credential: String!) { signInWithPasskey(credential: $credential) {
  ... on LoginSuccess { token } ${LIMITED} ${FAILED} } }`
const REGISTRATION_OPTIONS = `mutation PasskeyRegistrationOptions { passkeyRegistrationOptions { ${OPTIONS} } }`
const REGISTER = `mutation RegisterPasskey($credential: String!, $name: String!) { registerPasskey(credential: $credential, name: $name) {
  ... on PasskeyAdded { passkey { id name } } ${INVALID} ${FAILED} } }`
export const MAX_NAME_LENGTH = 100

/** Whether this browser can use passkeys with the options as the server sends them. */
export function supported () {
  return typeof globalThis.PublicKeyCredential?.parseRequestOptionsFromJSON === 'function' && !!navigator.credentials
}

/** Sign in with a passkey the device offers; the `LoginSuccess`. Throws `Refused` when it is not
 *  accepted, and the browser's `NotAllowedError` when the person cancels. */
export async function signInWithPasskey (api) {
  const { options } = await api.mutate(SIGN_IN_OPTIONS, {}, null, 'PasskeyOptions')
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(JSON.parse(options))
  const credential = await navigator.credentials.get({ publicKey })
  return api.mutate(SIGN_IN, { credential: JSON.stringify(credential.toJSON()) }, null, 'LoginSuccess')
}

/** Make a passkey on this device and keep it under `name`: `{ passkey }` or `{ invalid }`. */
export async function addPasskey (mutate, name) {
  const asked = await mutate(REGISTRATION_OPTIONS, {}, 'PasskeyOptions')
  if (asked.invalid) return asked
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(JSON.parse(asked.options))
  const credential = await navigator.credentials.create({ publicKey })
  return mutate(REGISTER, { credential: JSON.stringify(credential.toJSON()), name }, 'PasskeyAdded')
}

/** What went wrong with a passkey, in words: cancelled on the device, not supported, or `explain`'s. */
export function passkeyProblem (t, error, explain) {
  if (error?.name === 'NotAllowedError' || error?.name === 'AbortError') return t.passkeyCancelled
  if (error?.name === 'InvalidStateError') return t.errors.taken
  if (error?.name === 'NotSupportedError' || error?.name === 'SecurityError') return t.passkeyUnsupported
  return explain(error)
}

/** The form that adds a passkey: its name, then the device's own prompt. `onAdded(passkey)` after. */
export function passkeyForm (t, mutate, explain, onAdded) {
  const name = el('input', { id: 'passkey-name', type: 'text', autocomplete: 'off', required: true, maxlength: MAX_NAME_LENGTH, 'aria-describedby': 'passkey-name-help' })
  const note = el('p', { class: 'note', role: 'status' })
  const submit = async (event) => {
    event.preventDefault()
    note.textContent = ''
    try {
      const added = await addPasskey(mutate, name.value)
      if (added.invalid) return void (note.textContent = explain(added.invalid[0]))
      name.value = ''
      await onAdded(added.passkey)
    } catch (error) {
      note.textContent = passkeyProblem(t, error, explain)
    }
  }
  return el('form', { onsubmit: submit, class: 'passkey' },
    el('label', { for: 'passkey-name' }, t.passkeyName), name,
    el('p', { id: 'passkey-name-help', class: 'quiet' }, t.passkeyNameHelp),
    el('button', { type: 'submit' }, t.addPasskey),
    note)
}

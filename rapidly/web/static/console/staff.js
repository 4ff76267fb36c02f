// The company's staff, for its admins: who they are, their roles and passkeys, and removing someone.

import { el } from '../lib/dom.js'
import { FAILED, INVALID, LIMITED } from '../lib/graphql.js'
import { fill } from '../lib/i18n.js'
import { confirmed, frame } from './frame.js'

const STAFF = 'query Staff { viewer { id tenant { staff { id email role lastSignInAt passkeys } invitations { id email role expiresAt sent problem } } } }'
const MEMBER = 'id email role'
const CHANGE_ROLE = `mutation ChangeRole($id: ID!, $role: StaffRole!) { changeStaffRole(id: $id, role: $role) {
  ... on StaffRoleChanged { staff { ${MEMBER} } } ${INVALID} ${FAILED} } }`
const INVITE = `mutation Invite($email: String!, $role: StaffRole!) { inviteStaff(email: $email, role: $role) {
  ... on StaffInvited { email } ${INVALID} ${LIMITED} ${FAILED} } }`
const CANCEL = `mutation Cancel($id: ID!) { cancelStaffInvitation(id: $id) { ... on InvitationCancelled { id } ${FAILED} } }`
const RESET_PASSKEYS = `mutation ResetPasskeys($id: ID!) { resetStaffPasskeys(id: $id) { ... on PasskeysReset { staff { id } } ${FAILED} } }`
const REMOVE = `mutation Remove($id: ID!) { removeStaff(id: $id) { ... on StaffRemoved { id } ${INVALID} ${FAILED} } }`
export const ROLES = ['ADMIN', 'STAFF']

export class Staff {
  constructor (app) {
    const t = (this.app = app).t
    this.title = t.staff
    const { element, note } = frame(t.staff)
    Object.assign(this, { element, note })
    this.rows = el('tbody')
    this.table = el('table', { class: 'staff' },
      el('caption', { class: 'sr' }, t.staff),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, t.email),
        el('th', { scope: 'col' }, t.role),
        el('th', { scope: 'col' }, t.lastSignIn),
        el('th', { scope: 'col' }, t.passkeys),
        el('th', { scope: 'col' }, el('span', { class: 'sr' }, t.actions)))),
      this.rows)
    this.email = el('input', { id: 'invite-email', type: 'email', autocomplete: 'off', required: true, maxlength: 320 })
    this.role = el('select', { id: 'invite-role' }, ROLES.map((code) => el('option', { value: code, selected: code === 'STAFF' }, t.roles[code])))
    this.inviteNote = el('p', { class: 'note', role: 'status' })
    this.waiting = el('ul', { class: 'invitations', 'aria-labelledby': 'waiting-heading' })
    const invite = (event) => { event.preventDefault(); this.#invite() }
    element.append(el('p', { class: 'quiet' }, t.rolesHelp), this.table,
      el('section', { 'aria-labelledby': 'invite-heading' },
        el('h2', { id: 'invite-heading' }, t.inviteHeading),
        el('form', { onsubmit: invite },
          el('label', { for: 'invite-email' }, t.email), this.email,
          el('label', { for: 'invite-role' }, t.role), this.role,
          el('button', { type: 'submit' }, t.invite)),
        this.inviteNote,
        el('h3', { id: 'waiting-heading' }, t.waitingInvitations), this.waiting))
  }

  async #invite () {
    const t = this.app.t
    this.inviteNote.textContent = ''
    try {
      const invited = await this.app.mutate(INVITE, { email: this.email.value, role: this.role.value }, 'StaffInvited')
      if (invited.invalid) return void (this.inviteNote.textContent = this.app.explain(invited.invalid[0]))
      this.inviteNote.textContent = fill(t.invitationSent, { email: invited.email })
      this.email.value = ''
      await this.load()
    } catch (error) {
      this.inviteNote.textContent = this.app.explain(error)
    }
  }

  problem (text) { this.note.textContent = text; this.table.hidden = true }
  close () { this.closed = true }

  async load () {
    const data = await this.app.call(STAFF)
    if (this.closed) return
    this.viewerId = data.viewer.id
    this.table.hidden = false
    this.rows.replaceChildren(...data.viewer.tenant.staff.map((member) => this.#row(member)))
    this.#showWaiting(data.viewer.tenant.invitations)
  }

  #showWaiting (invitations) {
    const t = this.app.t
    const fared = (invitation) => ['FAILED', 'SUPPRESSED'].includes(invitation.sent)
      ? el('strong', {}, ' ', fill(t.invitationNotSent, { why: t.notSent[invitation.problem] || invitation.problem || '' }))
      : invitation.sent === 'SENT' ? ` ${t.invitationEmailed}` : ` ${t.invitationQueued}`
    this.waiting.replaceChildren(...invitations.map((invitation) => el('li', {},
      fill(t.waitingInvitation, { email: invitation.email, role: t.roles[invitation.role], time: this.app.when(invitation.expiresAt) }),
      fared(invitation), ' ',
      el('button', { type: 'button', onclick: () => this.#cancel(invitation) }, fill(t.cancelInvitation, { email: invitation.email })))))
    if (!invitations.length) this.waiting.replaceChildren(el('li', { class: 'quiet' }, t.noInvitations))
  }

  async #cancel (invitation) {
    const t = this.app.t
    this.inviteNote.textContent = ''
    try {
      await this.app.mutate(CANCEL, { id: invitation.id }, 'InvitationCancelled')
      this.inviteNote.textContent = fill(t.invitationCancelled, { email: invitation.email })
      await this.load()
      this.email.focus()
    } catch (error) {
      this.inviteNote.textContent = this.app.explain(error)
    }
  }

  #row (member) {
    const t = this.app.t
    const id = `role-${member.id}`
    const role = el('select', { id, 'aria-label': fill(t.roleOf, { email: member.email }) },
      ROLES.map((code) => el('option', { value: code, selected: code === member.role }, t.roles[code])))
    const change = el('button', { type: 'button', onclick: () => this.#change(member, role) }, fill(t.changeRoleOf, { email: member.email }))
    const remove = el('button', { type: 'button', class: 'danger', onclick: () => this.#confirmRemove(member) },
      fill(t.removeOf, { email: member.email }))
    const reset = member.passkeys && member.id !== this.viewerId
      ? el('button', { type: 'button', onclick: () => this.#confirmReset(member) }, fill(t.resetPasskeysOf, { email: member.email }))
      : null
    return el('tr', { 'data-id': member.id },
      el('td', {}, member.email, member.id === this.viewerId ? ` (${t.you})` : ''),
      el('td', {}, role, ' ', change),
      el('td', {}, member.lastSignInAt ? this.app.when(member.lastSignInAt) : t.never),
      el('td', {}, String(member.passkeys), reset ? ' ' : '', reset),
      el('td', {}, remove))
  }

  /** The role chosen in `select`, given once asked for: making someone an admin, and giving up
   *  one's own admin role, are confirmed first. */
  async #change (member, select) {
    const t = this.app.t
    this.note.textContent = ''
    if (select.value === member.role) return
    const question = select.value === 'ADMIN' ? fill(t.makeAdminConfirm, { email: member.email })
      : member.id === this.viewerId ? t.demoteSelfConfirm : null
    if (question && !await confirmed(this.element, question, t.changeRoleYes, t.cancel)) {
      select.value = member.role
      return
    }
    try {
      const changed = await this.app.mutate(CHANGE_ROLE, { id: member.id, role: select.value }, 'StaffRoleChanged')
      if (changed.invalid) {
        select.value = member.role
        this.note.textContent = this.app.explain(changed.invalid[0])
        return
      }
      member.role = changed.staff.role
      this.app.announce(fill(t.roleChanged, { email: member.email, role: t.roles[member.role] }))
      if (member.id === this.viewerId && member.role !== 'ADMIN') await this.app.reenter()
    } catch (error) {
      select.value = member.role
      this.note.textContent = this.app.explain(error)
    }
  }

  /** A colleague lost a passkey: theirs are removed and their sessions ended, once confirmed. */
  async #confirmReset (member) {
    const t = this.app.t
    this.note.textContent = ''
    if (!await confirmed(this.element, fill(t.resetPasskeysConfirm, { email: member.email }), t.resetPasskeysYes, t.cancel)) return
    try {
      await this.app.mutate(RESET_PASSKEYS, { id: member.id }, 'PasskeysReset')
      this.app.announce(fill(t.passkeysReset, { email: member.email }))
      await this.load()
      this.element.querySelector('h1').focus()
    } catch (error) {
      this.note.textContent = this.app.explain(error)
    }
  }

  async #confirmRemove (member) {
    const t = this.app.t
    if (await confirmed(this.element, fill(t.removeConfirm, { email: member.email }), t.removeYes, t.cancel)) await this.#remove(member)
  }

  async #remove (member) {
    this.note.textContent = ''
    try {
      const removed = await this.app.mutate(REMOVE, { id: member.id }, 'StaffRemoved')
      if (removed.invalid) return void (this.note.textContent = this.app.explain(removed.invalid[0]))
      this.app.announce(fill(this.app.t.removed, { email: member.email }))
      if (member.id === this.viewerId) return void await this.app.reenter() // their own account: signed out
      await this.load()
      this.element.querySelector('h1').focus()
    } catch (error) {
      this.note.textContent = this.app.explain(error)
    }
  }
}

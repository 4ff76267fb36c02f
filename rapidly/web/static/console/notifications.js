// The staff member's notifications.

import { el } from '../lib/dom.js'
import { frame } from './frame.js'

const NOTIFICATIONS = `query Notifications($locale: String) { notifications(first: 50) {
  edges { node { id contactId text(locale: $locale) createdAt readAt } } } }`
const MARK_READ = 'mutation MarkRead($ids: [ID!]!) { markNotificationsRead(ids: $ids) }'

export class Notifications {
  constructor (app) {
    const t = (this.app = app).t
    this.title = t.notifications
    const { element, note } = frame(t.notifications)
    Object.assign(this, { element, note })
    this.list = el('ul', { class: 'notifications' })
    this.mark = el('button', { type: 'button', onclick: () => this.#markAll() }, t.markAllRead)
    element.append(this.mark, this.list)
  }

  problem (text) { this.note.textContent = text }
  close () { this.closed = true }
  refresh () { return this.load() }

  async load () {
    const t = this.app.t
    const edges = (await this.app.call(NOTIFICATIONS, { locale: this.app.locale })).notifications.edges
    if (this.closed) return
    this.unread = edges.filter(({ node }) => !node.readAt).map(({ node }) => node.id)
    this.list.replaceChildren(...edges.map(({ node }) => el('li', { class: node.readAt ? null : 'unread' },
      el('a', { href: `#/contacts/${encodeURIComponent(node.contactId)}` }, node.text), ' ',
      el('span', { class: 'quiet' }, this.app.when(node.createdAt)))))
    if (!edges.length) this.list.replaceChildren(el('li', { class: 'quiet' }, t.noNotifications))
    this.mark.hidden = !this.unread.length
  }

  async #markAll () {
    try {
      await this.app.call(MARK_READ, { ids: this.unread })
      await this.load()
      this.app.refreshUnread()
    } catch (error) {
      this.problem(this.app.explain(error))
    }
  }

  onEvent (kind) { if (kind !== 'FIELD_SAVED') this.load().catch(() => {}) }
}

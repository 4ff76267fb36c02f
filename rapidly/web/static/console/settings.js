// The company's settings, as the operator set them.

import { el } from '../lib/dom.js'
import { fill } from '../lib/i18n.js'
import { frame } from './frame.js'

export class Settings {
  constructor (app) {
    const t = (this.app = app).t
    this.title = t.settings
    const { element } = frame(t.settings)
    const tenant = app.viewer.tenant
    const row = (term, ...details) => [el('dt', {}, term), ...details.map((detail) => el('dd', {}, detail))]
    const channels = tenant.messageChannels.map(({ event, channels }) =>
      `${app.event(event)}: ${channels.map((c) => t.channel[c] || c).join(', ') || t.off}`)
    element.append(el('dl', { class: 'settings' },
      row(t.keptFor, tenant.retentionDays ? fill(t.keptDays, { days: tenant.retentionDays }) : t.keptUntilErased),
      row(t.messageChannels, ...channels),
      row(t.origins, ...(tenant.allowedOrigins.length ? tenant.allowedOrigins : [t.noOrigins]))))
    this.element = element
  }

  async load () {}
}

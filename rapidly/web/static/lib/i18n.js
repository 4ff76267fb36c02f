// What every page of Rapidly's needs of its languages: which there are, which to use, and filling in
// a text's `{placeholders}`. Each page keeps its own texts, one module per language.

export const LOCALES = ['fi', 'sv', 'en']

/** `template` with `{name}` replaced by `values.name`. */
export function fill (template, values = {}) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole))
}

/** The first of `tags` ("sv-FI", "en", …) whose language Rapidly speaks; null for none. */
export function pickLocale (...tags) {
  for (const tag of tags) {
    const primary = String(tag || '').toLowerCase().split('-')[0]
    if (LOCALES.includes(primary)) return primary
  }
  return null
}

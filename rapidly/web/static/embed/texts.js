// The form's own words, one module per language (texts-fi.js, texts-sv.js, texts-en.js), so that a
// page loads only its own. The fields' labels, help and purposes come from the company's plugin
// through `form(locale)`; error codes are worded here, in the reader's language, and an unknown code
// falls back to the server's (English) message.

export const LOCALES = ['fi', 'sv', 'en']

/** The texts of `locale` (English for anything else). */
export async function textsFor (locale) {
  return (await import(`./texts-${LOCALES.includes(locale) ? locale : 'en'}.js`)).default
}

/** `template` with `{name}` replaced by `values.name`. */
export function fill (template, values = {}) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole))
}

/** The language to ask the server for: the `locale` attribute, else the page's `lang`; null lets
 *  the company's default decide. */
export function pickLocale (attribute, pageLang) {
  for (const tag of [attribute, pageLang]) {
    const primary = String(tag || '').toLowerCase().split('-')[0]
    if (LOCALES.includes(primary)) return primary
  }
  return null
}

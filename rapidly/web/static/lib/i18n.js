// What every page of Rapidly's needs of its languages: which there are, which to use, loading a
// page's texts, and filling in a text's `{placeholders}`. Each page keeps its own texts, one module
// per language (texts-fi.js, texts-sv.js, texts-en.js beside its code), so that it loads only its own.

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

/** The texts of `locale` (English for a language Rapidly does not speak): the default export of
 *  `texts-{locale}.js` beside the module at `base` (that module's `import.meta.url`). */
export async function textsBeside (base, locale) {
  return (await import(new URL(`texts-${LOCALES.includes(locale) ? locale : 'en'}.js`, base).href)).default
}

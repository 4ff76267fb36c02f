// The form's own words, one module per language (texts-fi.js, texts-sv.js, texts-en.js), so that a
// page loads only its own. The fields' labels, help and purposes come from the company's plugin
// through `form(locale)`; error codes are worded here, in the reader's language, and an unknown code
// falls back to the server's (English) message.

import { textsBeside } from '../lib/i18n.js'

/** The texts of `locale` (English for anything else). */
export const textsFor = (locale) => textsBeside(import.meta.url, locale)

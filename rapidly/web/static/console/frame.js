// A view's frame, shared by the console's screens.

import { el } from '../lib/dom.js'

/** A view's frame: its heading (which takes the focus when shown) and a note for problems. */
export function frame (title) {
  const heading = el('h1', { tabindex: -1 }, title)
  const note = el('p', { class: 'error', role: 'alert' })
  const element = el('div', { class: 'view' }, heading, note)
  queueMicrotask(() => heading.focus({ preventScroll: true }))
  return { element, heading, note }
}

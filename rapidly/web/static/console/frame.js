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

/** Ask before something that cannot be undone at once: a modal dialog whose safe choice (`no`) has the
 *  focus first; resolves true for `yes`. The focus goes back where it was. */
export function confirmed (parent, question, yes, no) {
  return new Promise((resolve) => {
    const opener = document.activeElement
    let answer = false
    const cancel = el('button', { type: 'button', class: 'primary', onclick: () => dialog.close() }, no)
    const accept = el('button', { type: 'button', class: 'danger', onclick: () => { answer = true; dialog.close() } }, yes)
    const dialog = el('dialog', { 'aria-labelledby': 'confirm-question', role: 'alertdialog' },
      el('p', { id: 'confirm-question' }, question), el('div', { class: 'actions' }, cancel, accept))
    dialog.addEventListener('close', () => {
      dialog.remove()
      if (opener?.isConnected) opener.focus()
      resolve(answer)
    })
    parent.append(dialog)
    dialog.showModal()
    cancel.focus()
  })
}

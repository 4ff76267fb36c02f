// Building DOM without markup: text is always a text node, so nothing a user typed can become an
// element, a script or an attribute.

/** An element with attributes (`on*` functions become listeners; false/null skip) and children
 *  (strings are text nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue
    if (typeof value === 'function') node.addEventListener(name.slice(2), value)
    else node.setAttribute(name, value === true ? '' : String(value))
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false))
  return node
}

const SVG = 'http://www.w3.org/2000/svg'
const SVG_SHAPES = { svg: ['viewBox'], title: [], path: ['d', 'fill', 'stroke'], rect: ['x', 'y', 'width', 'height', 'fill'] }

/** An SVG document (the server's QR code) rebuilt from its shapes alone: no script, link, style or
 *  event attribute can come through, whatever the text holds. */
export function safeSvg(text, label) {
  const parsed = new DOMParser().parseFromString(text, 'image/svg+xml').documentElement
  const copy = (source) => {
    const name = source.localName
    if (source.namespaceURI !== SVG || !(name in SVG_SHAPES)) return null
    const node = document.createElementNS(SVG, name)
    for (const attribute of SVG_SHAPES[name]) {
      if (source.hasAttribute(attribute)) node.setAttribute(attribute, source.getAttribute(attribute))
    }
    if (name === 'title') node.textContent = source.textContent
    else for (const child of source.children) { const kept = copy(child); if (kept) node.append(kept) }
    return node
  }
  const svg = parsed.localName === 'svg' ? copy(parsed) : document.createElementNS(SVG, 'svg')
  svg.setAttribute('role', 'img')
  svg.setAttribute('aria-label', label)
  svg.querySelector('title')?.remove()
  return svg
}

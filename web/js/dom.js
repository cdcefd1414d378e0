// web/js/dom.js — the few DOM helpers every page uses.
//
// h() builds elements from tag, attributes and children. Text always goes in
// as text nodes (never innerHTML), so names and strings from the API cannot
// inject markup. Attributes: "class", "on<event>" (a listener), "style" (an
// object), "value"/"checked"/"disabled"/"selected" (set as properties), the
// rest via setAttribute; null/false/undefined attributes and children are skipped.

const PROPS = new Set(['value', 'checked', 'disabled', 'selected']);

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style') Object.assign(el.style, v);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/* Replaces el's children with the given ones. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/* A link to a dashboard route, e.g. link('#/jobs/3', 'job 3'). */
export function link(href, ...children) {
  return h('a', { href }, ...children);
}

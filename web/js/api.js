// web/js/api.js — the dashboard's only way to the daemon: the public REST API
// under /v1 (see docs/API.md). Every call returns parsed JSON or throws an
// ApiError carrying the RFC 9457 problem (status, detail, per-field errors).
// Calls take an AbortSignal so a page that is left stops its requests.
import { parseNpy } from './npy.js';

export class ApiError extends Error {
  constructor(status, problem, fallback) {
    super(problem?.detail || problem?.title || fallback || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.errors = Array.isArray(problem?.errors) ? problem.errors : []; /* [{field, message}] */
  }
}

async function request(method, path, body, signal) {
  const opts = { method, headers: { Accept: 'application/json' }, signal };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/v1${path}`, opts);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, null, `cannot reach the daemon (${e.message}); is saed still running?`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, data, text.slice(0, 200));
  return data;
}

export const get = (path, signal) => request('GET', path, undefined, signal);

/* A .npy array resource, parsed: {shape, data}. */
export async function getNpy(path, signal) {
  let res;
  try {
    res = await fetch(`/v1${path}`, { signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, null, `cannot reach the daemon (${e.message}); is saed still running?`);
  }
  if (!res.ok) {
    const text = await res.text();
    let data = null;
    try { data = JSON.parse(text); } catch { data = null; }
    throw new ApiError(res.status, data, text.slice(0, 200));
  }
  return parseNpy(await res.arrayBuffer());
}
export const post = (path, body, signal) => request('POST', path, body ?? {}, signal);
export const del = (path, signal) => request('DELETE', path, undefined, signal);

/* All items of a list resource, following "next" (at most `max` items). */
export async function list(path, signal, max = 1000) {
  const items = [];
  let after = null;
  const sep = path.includes('?') ? '&' : '?';
  do {
    const q = `${sep}limit=${Math.min(1000, max - items.length)}${after != null ? `&after=${after}` : ''}`;
    const page = await get(path + q, signal);
    items.push(...page.items);
    after = page.next;
  } while (after != null && items.length < max);
  return items;
}

export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const isTerminal = (state) => TERMINAL.has(state);

/* True when an error only means the page was left (nothing to show). */
export const isAbort = (e) => e?.name === 'AbortError';

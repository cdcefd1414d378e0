// web/js/api.js — the dashboard's only way to the daemon: the public REST API
// under /v1 (see docs/API.md). Every call returns parsed JSON or throws an
// ApiError carrying the RFC 9457 problem (status, detail, per-field errors).
// Calls take an AbortSignal so a page that is left stops its requests.
// When the daemon wants a token (--token-file), every call sends the one the
// tab keeps (token.js) as "Authorization: Bearer"; a 401 asks for a token
// (once for all calls that get one together) and retries the call once.
import { parseNpy } from './npy.js';
import { token, forgetToken, askToken, withToken } from './token.js';

export { withToken };

export class ApiError extends Error {
  constructor(status, problem, fallback) {
    super(problem?.detail || problem?.title || fallback || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.errors = Array.isArray(problem?.errors) ? problem.errors : []; /* [{field, message}] */
  }
}

/* fetch with the kept token; an ApiError(0) when the daemon cannot be reached. */
async function fetchWith(path, opts, tok) {
  const headers = { ...opts.headers, ...(tok ? { Authorization: `Bearer ${tok}` } : {}) };
  try {
    return await fetch(`/v1${path}`, { ...opts, headers });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, null, `cannot reach the daemon (${e.message}); is saed still running?`);
  }
}

/* True unless the daemon refuses tok (401): what the token dialog checks before keeping one. */
async function accepts(tok) {
  try {
    return (await fetch('/v1/jobs?limit=1', { headers: { Authorization: `Bearer ${tok}` } })).status !== 401;
  } catch {
    return true;   /* unreachable: the retry will say so */
  }
}

/* The response to path; on a 401 a token is asked for (the kept one was wrong) and the call retried once. */
async function send(path, opts) {
  const sent = token();
  const res = await fetchWith(path, opts, sent);
  if (res.status !== 401) return res;
  const now = token();
  if (sent && sent === now) forgetToken();
  const fresh = now && now !== sent ? now : await askToken(accepts, sent != null);   /* another call got one already */
  if (!fresh) return res;
  opts.signal?.throwIfAborted();
  const again = await fetchWith(path, opts, fresh);
  if (again.status === 401 && token() === fresh) forgetToken();
  return again;
}

/* The problem a failed response carries, as an ApiError. */
async function failure(res) {
  const text = await res.text();
  let data = null;
  try { data = JSON.parse(text); } catch { data = null; }
  return new ApiError(res.status, data, text.slice(0, 200));
}

async function request(method, path, body, signal) {
  const opts = { method, headers: { Accept: 'application/json' }, signal };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await send(path, opts);
  if (!res.ok) throw await failure(res);
  const text = await res.text();
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

export const get = (path, signal) => request('GET', path, undefined, signal);

/* A .npy array resource, parsed: {shape, data}. */
export async function getNpy(path, signal) {
  const res = await send(path, { signal });
  if (!res.ok) throw await failure(res);
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

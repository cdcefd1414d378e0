// web/js/live.js — a job's live event stream (GET /v1/jobs/{id}/events, SSE).
//
// watchJob(id, handlers) opens an EventSource and calls
//   onState(job)        on "event: state" (the whole job object),
//   onProgress(p)       on "event: progress" (progress plus p.latest metrics),
//   onStatus(s)         'live' | 'reconnecting' | 'ended' | 'gone' for an indicator.
// The stream ends by itself after a terminal state; we close it then so the
// browser does not reconnect. While the job runs the stream stays up: a dropped
// connection is retried by the browser (it sends Last-Event-ID itself); when
// the browser gives up (the daemon answered an error or was away too long) we
// reopen with ?last_event_id= after a growing delay, after checking that the
// job still exists (a 401 there asks for a token, which the reopened stream
// then carries). EventSource cannot send headers, so a kept token goes in the
// URL as ?access_token= (RFC 6750 §2.3). close() stops everything.
import { get, isTerminal, withToken } from './api.js';

const RETRY_MIN_MS = 1000, RETRY_MAX_MS = 15000;

export function watchJob(id, handlers = {}) {
  const { onState = () => {}, onProgress = () => {}, onStatus = () => {} } = handlers;
  let es = null, lastId = null, closed = false, timer = null, delay = RETRY_MIN_MS;

  function open() {
    const q = lastId != null ? `?last_event_id=${encodeURIComponent(lastId)}` : '';
    es = new EventSource(withToken(`/v1/jobs/${id}/events${q}`));
    es.addEventListener('open', () => { delay = RETRY_MIN_MS; onStatus('live'); });
    es.addEventListener('progress', (e) => {
      if (e.lastEventId) lastId = e.lastEventId;
      onProgress(JSON.parse(e.data));
    });
    es.addEventListener('state', (e) => {
      if (e.lastEventId) lastId = e.lastEventId;
      const job = JSON.parse(e.data);
      if (isTerminal(job.state)) { stop(); onStatus('ended'); }
      onState(job);
    });
    es.addEventListener('error', () => {
      if (closed) return;
      onStatus('reconnecting');
      if (es.readyState === EventSource.CLOSED) retryLater();
    });
  }

  function retryLater() {
    es.close();
    timer = setTimeout(async () => {
      timer = null;
      if (closed) return;
      try {
        await get(`/jobs/${id}`);            // still there? (a deleted job ends the watch)
      } catch (e) {
        if (e.status === 404) { stop(); onStatus('gone'); return; }
      }
      if (!closed) open();
    }, delay);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }

  function stop() {
    closed = true;
    if (timer) clearTimeout(timer);
    if (es) es.close();
  }

  open();
  return { close: stop };
}

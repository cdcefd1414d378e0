// web/js/fmt.js — number, time and size formatting. null/undefined (a metric
// that does not exist yet) always shows as an em dash.

export const DASH = '—';

/* Up to `digits` significant digits, switching to exponent form for very small or large magnitudes. */
export function num(x, digits = 4) {
  if (x == null || Number.isNaN(x)) return DASH;
  if (Number.isInteger(x) && Math.abs(x) < 1e7) return x.toLocaleString('en-US');
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e7)) return x.toExponential(Math.max(0, digits - 1));
  return Number(x.toPrecision(digits)).toString();
}

export function int(x) {
  return x == null ? DASH : Math.round(x).toLocaleString('en-US');
}

export function pct(fraction, digits = 1) {
  return fraction == null ? DASH : `${(fraction * 100).toFixed(digits)}%`;
}

/* A duration in seconds: "45 s", "3 min 05 s", "2 h 07 min". */
export function duration(s) {
  if (s == null || !Number.isFinite(s)) return DASH;
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60), sec = s % 60;
  if (m < 60) return `${m} min ${String(sec).padStart(2, '0')} s`;
  const hr = Math.floor(m / 60);
  return `${hr} h ${String(m % 60).padStart(2, '0')} min`;
}

/* An RFC 3339 time as local "YYYY-MM-DD HH:MM:SS". */
export function time(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/* Seconds between two RFC 3339 times (end defaults to now). */
export function elapsed(startIso, endIso) {
  if (!startIso) return null;
  const end = endIso ? new Date(endIso) : new Date();
  return (end - new Date(startIso)) / 1000;
}

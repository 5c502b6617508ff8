// Amounts and sizes as people read them.

/** TFT base units (1 TFT = 10^7) as TFT. */
export function tft(units: number | null | undefined, digits = 2): string {
  if (units == null) return '—';
  return `${(units / 1e7).toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })} TFT`;
}

/** USD in 7-decimal base units. */
export function usdUnits(units: number | null | undefined): string {
  if (units == null) return '—';
  return (units / 1e7).toLocaleString('en', { style: 'currency', currency: 'USD', maximumFractionDigits: 4 });
}

export function cents(c: number | null | undefined): string {
  if (c == null) return '—';
  return (c / 100).toLocaleString('en', { style: 'currency', currency: 'USD' });
}

export function bytes(b: number | null | undefined): string {
  if (b == null) return '—';
  const gib = b / 2 ** 30;
  return gib >= 1024 ? `${(gib / 1024).toFixed(1)} TiB` : `${gib.toFixed(gib < 10 ? 1 : 0)} GiB`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

/** Basis points as a percentage (9,850 → 98.50 %). */
export function bps(b: number | null | undefined): string {
  if (b == null) return '—';
  return `${(b / 100).toFixed(2)} %`;
}

/** Seconds as days and hours. */
export function duration(s: number | null | undefined): string {
  if (s == null) return '—';
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  return d > 0 ? `${d} d ${h} h` : `${h} h ${Math.floor((s % 3600) / 60)} min`;
}

/** TFT base units given as a decimal string (alliance figures). */
export function tftText(units: string | null | undefined): string {
  if (units == null || units === '') return '—';
  const n = Number(units);
  return Number.isFinite(n) ? tft(n) : `${units} units`;
}

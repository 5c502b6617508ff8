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

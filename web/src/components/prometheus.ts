// The Prometheus text exposition format (version 0.0.4), read in the
// browser: one sample per line, `name{label="value",...} value [timestamp]`,
// `#` lines are HELP/TYPE comments. Enough for the operator's overview;
// histograms arrive as their `_bucket`/`_sum`/`_count` samples.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function number(text: string): number {
  switch (text) {
    case '+Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
    default:
      return Number(text);
  }
}

/** Reads `{a="x",b="y\"z"}` from `line` at `i`; returns the labels and where they end. */
function labelsAt(line: string, i: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++; // past '{'
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i++;
    if (line[i] === '}') return [labels, i + 1];
    const name = NAME.exec(line.slice(i));
    if (!name) throw new Error(`bad label name at ${i}`);
    i += name[0].length;
    while (line[i] === ' ') i++;
    if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`expected ="…" at ${i}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = line[i];
      if (c === undefined) throw new Error('unterminated label value');
      if (c === '"') break;
      if (c === '\\') {
        const n = line[i + 1];
        value += n === 'n' ? '\n' : n;
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    labels[name[0]] = value;
    i++; // past '"'
  }
}

/** Every sample of a scrape; malformed lines are skipped rather than failing the page. */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    try {
      const name = NAME.exec(line);
      if (!name) continue;
      let i = name[0].length;
      let labels: Record<string, string> = {};
      if (line[i] === '{') [labels, i] = labelsAt(line, i);
      const [value] = line.slice(i).trim().split(/\s+/);
      if (value === undefined || value === '') continue;
      const v = number(value);
      if (Number.isNaN(v) && value !== 'NaN') continue;
      out.push({ name: name[0], labels, value: v });
    } catch {
      continue;
    }
  }
  return out;
}

/** The samples of one metric, keyed by one of their labels (summed when several share it). */
export function byLabel(samples: Sample[], name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name) continue;
    const key = s.labels[label] ?? '';
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

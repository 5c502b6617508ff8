// The wallet: balance and runway, the balance over time, the ledger, card
// payments (WalletCards.tsx), monthly statements as PDF, and the TFChain
// account link.

import { useMemo, useState } from 'preact/hooks';
import { api, ok, idempotencyKey, Problem, type Schemas } from '../../api/client';
import { session } from '../../auth/session';
import { Empty, Loaded, ProblemView, useAsync } from '../../components/state';
import { TimeChart } from '../../components/TimeChart';
import { tft, when } from '../../components/format';
import { AutoTopUp, SavedCards, TopUp } from './WalletCards';

type Wallet = Schemas['WalletBody'];

/** The balance after each ledger entry, oldest first (the ledger is newest first). */
function balanceSeries(w: Wallet): { times: number[]; values: number[] } {
  const points: [number, number][] = [];
  let balance = w.balance_tft_units;
  const now = Date.now() / 1000;
  points.push([now, balance]);
  for (const e of w.ledger) {
    const t = new Date(e.at).getTime() / 1000;
    points.push([Math.min(t, points[points.length - 1][0]), balance]);
    balance -= e.amount_tft_units;
    points.push([t - 1e-3, balance]);
  }
  points.reverse();
  return { times: points.map((p) => p[0]), values: points.map((p) => p[1] / 1e7) };
}

/** Reloads the wallet, at least at `version` when a command answered one (read your own write). */
export type Reload = (version?: number) => void;

export function Wallet() {
  const [atLeast, setAtLeast] = useState(0);
  const wallet = useAsync(
    () => ok(api.GET('/v1/wallet', { params: { query: atLeast > 0 ? { min_version: atLeast } : {} } })),
    [atLeast],
  );
  const reload: Reload = (version) => (version && version > atLeast ? setAtLeast(version) : wallet.reload());
  return (
    <section>
      <h1>Wallet</h1>
      <Loaded async={wallet}>{(w) => <WalletView w={w} reload={reload} />}</Loaded>
    </section>
  );
}

function WalletView({ w, reload }: { w: Wallet; reload: Reload }) {
  const series = useMemo(() => balanceSeries(w), [w]);
  const format = useMemo(() => (v: number) => `${v.toFixed(2)}`, []);
  const chartSeries = useMemo(() => [{ label: 'Balance (TFT)', values: series.values }], [series]);
  return (
    <>
      <div class="grid-2">
        <article>
          <header>Balance</header>
          <p>
            <strong data-testid="balance" aria-live="polite">{tft(w.balance_tft_units)}</strong>
          </p>
          <p>
            <small>
              Burning {tft(w.runway.hourly_burn_tft_units, 4)} an hour
              {w.runway.runway_hours != null ? `: about ${w.runway.runway_hours} hours left` : ''}. Staking discount:{' '}
              {w.runway.discount_level} ({w.runway.discount_percent}%).
            </small>
          </p>
          {w.runway_alerts.length > 0 && <p class="error">Low balance: under {Math.min(...w.runway_alerts)} hours of runway.</p>}
        </article>
        <article>
          <header>Top up</header>
          <TopUp wallet={w} onDone={reload} />
        </article>
      </div>
      <h2>Balance over time</h2>
      {w.ledger.length === 0 ? (
        <Empty>No movements yet.</Empty>
      ) : (
        <TimeChart title="Balance over time, TFT" times={series.times} series={chartSeries} format={format} />
      )}
      <h2>Ledger</h2>
      <Ledger w={w} />
      <div class="grid-2">
        <article>
          <header>Saved cards</header>
          <SavedCards wallet={w} onChange={reload} />
        </article>
        <article>
          <header>Automatic top-up</header>
          <AutoTopUp wallet={w} onChange={reload} />
        </article>
      </div>
      <div class="grid-2">
        <article>
          <header>Statements</header>
          <Statements />
        </article>
        <article>
          <header>TFChain account</header>
          <Link w={w} onChange={reload} />
        </article>
      </div>
    </>
  );
}

function Ledger({ w }: { w: Wallet }) {
  if (w.ledger.length === 0) return <Empty>The ledger is empty.</Empty>;
  return (
    <div class="table-wrap">
      <table class="striped">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">What</th>
            <th scope="col">Amount</th>
            <th scope="col">Reference</th>
          </tr>
        </thead>
        <tbody>
          {w.ledger.map((e, i) => (
            <tr key={`${e.reference}-${i}`}>
              <td>{when(e.at)}</td>
              <td>
                {e.kind}
                {e.bills ? <small> ({e.bills} bills)</small> : null}
              </td>
              <td>{tft(e.amount_tft_units, 4)}</td>
              <td>
                {e.receipt_url ? <a href={e.receipt_url}>Receipt</a> : <small>{e.reference}</small>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function thisMonth(): string {
  return new Date().toISOString().slice(0, 7);
}

function Statements() {
  const [month, setMonth] = useState(thisMonth());
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  // A PDF needs the bearer token, so it is fetched and handed to the browser as a download.
  const download = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const r = await fetch(`/v1/wallet/statements/${encodeURIComponent(month)}`, {
        headers: { accept: 'application/pdf', authorization: `Bearer ${session.value?.token}` },
      });
      if (!r.ok) {
        const doc = await r.json().catch(() => ({ title: r.statusText }));
        throw new Problem(r.status, doc);
      }
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = `statement-${month}.pdf`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={download} aria-label="Monthly statement">
      <label>
        Month
        <input type="month" name="month" value={month} max={thisMonth()} required onInput={(e) => setMonth(e.currentTarget.value)} />
      </label>
      {error ? <ProblemView error={error} /> : null}
      <button type="submit" aria-busy={busy} disabled={busy}>Download the PDF</button>
    </form>
  );
}

function Link({ w, onChange }: { w: Wallet; onChange: Reload }) {
  const [challenge, setChallenge] = useState<Schemas['LinkChallengeBody']>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const ask = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    void run(async () => {
      const c = await ok(
        api.POST('/v1/wallet/link-challenges', {
          body: { account: String(f.get('account')).trim(), key_type: String(f.get('key_type')) as never },
          params: { header: { 'Idempotency-Key': idempotencyKey() } as never },
        }),
      );
      setChallenge(c);
    });
  };
  const sign = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    void run(async () => {
      const done = await ok(
        api.POST('/v1/wallet/link-challenges/{challenge_id}/signature', {
          params: { path: { challenge_id: challenge!.challenge_id }, header: { 'Idempotency-Key': idempotencyKey() } as never },
          body: { signature: String(f.get('signature')).trim() },
        }),
      );
      setChallenge(undefined);
      onChange(done.version);
    });
  };
  const bad = error instanceof Problem ? error.field : undefined;
  return (
    <>
      {w.linked_account ? (
        <p>
          Linked: <code>{w.linked_account.account}</code> ({w.linked_account.key_type}) since {when(w.linked_account.linked_at)}.
        </p>
      ) : (
        <p>No account linked.</p>
      )}
      {!challenge ? (
        <form onSubmit={ask} aria-label="Link a TFChain account">
          <label>
            SS58 address
            <input name="account" required aria-invalid={bad === 'account' ? 'true' : undefined} />
          </label>
          <label>
            Key type
            <select name="key_type">
              <option value="sr25519">sr25519</option>
              <option value="ed25519">ed25519</option>
            </select>
          </label>
          {error ? <ProblemView error={error} /> : null}
          <button type="submit" aria-busy={busy} disabled={busy}>{w.linked_account ? 'Link another account' : 'Link an account'}</button>
        </form>
      ) : (
        <form onSubmit={sign} aria-label="Sign the challenge">
          <p>
            Sign this message with the account's key (valid until {when(challenge.expires_at)}):
          </p>
          <pre>
            <code>{challenge.message}</code>
          </pre>
          <label>
            Signature (hex)
            <input name="signature" required pattern="(0x)?[0-9a-fA-F]+" aria-invalid={bad === 'signature' ? 'true' : undefined} />
          </label>
          {error ? <ProblemView error={error} /> : null}
          <button type="submit" aria-busy={busy} disabled={busy}>Link</button>{' '}
          <button type="button" class="secondary" onClick={() => setChallenge(undefined)}>Cancel</button>
        </form>
      )}
    </>
  );
}

// Card payments on the wallet page, through Stripe Elements: top up now
// (a new card in the Elements form, or a saved one), save a card
// (a SetupIntent), choose the default, remove one, and the auto top-up rule.

import { useEffect, useId, useRef, useState } from 'preact/hooks';
import type { Stripe, StripeCardElement } from '@stripe/stripe-js';
import { api, ok, idempotencyKey, Problem, type Schemas } from '../../api/client';
import { stripe } from '../../components/stripe';
import { Empty, ProblemView } from '../../components/state';
import { cents, tft } from '../../components/format';
import type { Reload } from './Wallet';

type Wallet = Schemas['WalletBody'];

/** The Elements card form, mounted while shown. */
function CardField({ onReady, label }: { onReady: (s: Stripe, card: StripeCardElement) => void; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string>();
  const labelId = useId();
  useEffect(() => {
    let card: StripeCardElement | undefined;
    stripe().then(
      (s) => {
        if (!s || !box.current) return setError('Card payments are not configured.');
        card = s.elements().create('card', { hidePostalCode: true });
        card.mount(box.current);
        onReady(s, card);
      },
      (e) => setError(String(e instanceof Error ? e.message : e)),
    );
    return () => card?.destroy();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <div>
      <span id={labelId}>{label}</span>
      <div ref={box} class="card-element" role="group" aria-labelledby={labelId} data-testid="card-element" />
      {error && <p class="error" role="alert">{error}</p>}
    </div>
  );
}

/**
 * Waits until the wallet shows what a Stripe webhook brings (a credited
 * top-up, a saved card): each read waits server-side (bounded) for the
 * next version of the wallet, so nothing polls on a timer.
 */
export async function walletUntil(fromVersion: number, done: (w: Wallet) => boolean): Promise<Wallet> {
  let version = fromVersion;
  for (let i = 0; i < 20; i++) {
    const w = await ok(api.GET('/v1/wallet', { params: { query: { min_version: version + 1 } } })).catch((e) => {
      if (e instanceof Problem && e.status === 503) return null; // not there within the wait: ask again
      throw e;
    });
    if (w) {
      if (done(w)) return w;
      version = w.version;
    }
  }
  throw new Problem(0, { title: 'Stripe has not confirmed it yet', detail: 'Reload the wallet in a minute.' });
}

export function TopUp({ wallet, onDone }: { wallet: Wallet; onDone: Reload }) {
  const [dollars, setDollars] = useState('25');
  const [use, setUse] = useState<string>('new');
  const [error, setError] = useState<unknown>();
  const [state, setState] = useState<'idle' | 'paying' | 'confirming' | 'done'>('idle');
  const [result, setResult] = useState<string>();
  const el = useRef<{ s: Stripe; card: StripeCardElement }>();
  const key = useRef(idempotencyKey());
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setResult(undefined);
    setState('paying');
    try {
      const created = await ok(
        api.POST('/v1/wallet/top-ups', {
          body: { usd_cents: Math.round(Number(dollars) * 100) },
          params: { header: { 'Idempotency-Key': key.current } as never },
        }),
      );
      const s = el.current?.s ?? (await stripe());
      if (!s || !created.client_secret) throw new Problem(503, { title: 'Card payments are not configured' });
      const paid = await s.confirmCardPayment(created.client_secret, {
        payment_method: use === 'new' ? { card: el.current!.card } : use,
      });
      if (paid.error) throw new Problem(402, { title: 'The card was not charged', detail: paid.error.message });
      setState('confirming');
      const w = await walletUntil(created.version, (w) =>
        w.top_ups.some((x) => x.top_up_id === created.top_up_id && x.status !== 'pending'),
      );
      const t = w.top_ups.find((x) => x.top_up_id === created.top_up_id)!;
      setResult(
        t.status === 'credited'
          ? `${cents(t.usd_cents)} paid: ${tft(t.tft_units)} credited.`
          : `The payment failed: ${t.failure_message ?? t.failure_code ?? t.status}.`,
      );
      key.current = idempotencyKey();
      setState('done');
      onDone(w.version);
    } catch (err) {
      setError(err);
      setState('idle');
    }
  };
  if (!wallet.payments_configured) return <Empty>Card payments are not configured on this server.</Empty>;
  return (
    <form onSubmit={submit} aria-label="Top up by card">
      <label>
        Amount (USD, $5 to $10,000)
        <input
          name="usd"
          type="number"
          min={5}
          max={10000}
          step="0.01"
          value={dollars}
          onInput={(e) => {
            setDollars(e.currentTarget.value);
            key.current = idempotencyKey();
          }}
          aria-invalid={error instanceof Problem && error.field === 'usd_cents' ? 'true' : undefined}
        />
      </label>
      {wallet.payment_methods.length > 0 && (
        <fieldset>
          <legend>Pay with</legend>
          {wallet.payment_methods.map((c) => (
            <label key={c.payment_method_id}>
              <input type="radio" name="card" value={c.payment_method_id} checked={use === c.payment_method_id} onChange={() => setUse(c.payment_method_id)} />
              {c.brand} •••• {c.last4}
            </label>
          ))}
          <label>
            <input type="radio" name="card" value="new" checked={use === 'new'} onChange={() => setUse('new')} />A new card
          </label>
        </fieldset>
      )}
      {use === 'new' && <CardField label="Card" onReady={(s, card) => (el.current = { s, card })} />}
      {error ? <ProblemView error={error} /> : null}
      {result && (
        <p role="status" data-testid="top-up-result">
          {result}
        </p>
      )}
      <button type="submit" aria-busy={state === 'paying' || state === 'confirming'} disabled={state === 'paying' || state === 'confirming'}>
        {state === 'confirming' ? 'Confirming the payment' : `Pay $${dollars || '0'}`}
      </button>
    </form>
  );
}

export function SavedCards({ wallet, onChange }: { wallet: Wallet; onChange: Reload }) {
  const [adding, setAdding] = useState(false);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const el = useRef<{ s: Stripe; card: StripeCardElement }>();
  const act = async (f: () => Promise<{ version: number } | void>) => {
    setError(undefined);
    setBusy(true);
    try {
      const done = await f();
      onChange(done ? done.version : undefined);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const save = (e: Event) => {
    e.preventDefault();
    void act(async () => {
      const si = await ok(api.POST('/v1/wallet/setup-intents', { params: { header: { 'Idempotency-Key': idempotencyKey() } as never } }));
      if (!el.current || !si.client_secret) throw new Problem(503, { title: 'Card payments are not configured' });
      const r = await el.current.s.confirmCardSetup(si.client_secret, { payment_method: { card: el.current.card } });
      if (r.error) throw new Problem(402, { title: 'The card was not saved', detail: r.error.message });
      const pm = typeof r.setupIntent.payment_method === 'string' ? r.setupIntent.payment_method : r.setupIntent.payment_method?.id;
      const w = await walletUntil(wallet.version, (w) => w.payment_methods.some((c) => c.payment_method_id === pm));
      setAdding(false);
      return w;
    });
  };
  return (
    <>
      {wallet.payment_methods.length === 0 ? (
        <Empty>No saved cards.</Empty>
      ) : (
        <ul>
          {wallet.payment_methods.map((c) => (
            <li key={c.payment_method_id}>
              {c.brand} •••• {c.last4}, expires {c.exp_month}/{c.exp_year} {c.default && <mark>default</mark>}{' '}
              {!c.default && (
                <button class="outline" disabled={busy} onClick={() => act(() => ok(api.POST('/v1/wallet/payment-methods/{payment_method_id}/default', { params: { path: { payment_method_id: c.payment_method_id } } })))}>
                  Make default
                </button>
              )}{' '}
              <button class="outline secondary" disabled={busy} onClick={() => act(() => ok(api.DELETE('/v1/wallet/payment-methods/{payment_method_id}', { params: { path: { payment_method_id: c.payment_method_id } } })))}>
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      {wallet.payments_configured &&
        (adding ? (
          <form onSubmit={save} aria-label="Save a card">
            <CardField label="New card" onReady={(s, card) => (el.current = { s, card })} />
            <button type="submit" aria-busy={busy} disabled={busy}>Save the card</button>{' '}
            <button type="button" class="secondary" onClick={() => setAdding(false)}>Cancel</button>
          </form>
        ) : (
          <button class="outline" onClick={() => setAdding(true)}>Add a card</button>
        ))}
      {error ? <ProblemView error={error} onReload={onChange} /> : null}
    </>
  );
}

export function AutoTopUp({ wallet, onChange }: { wallet: Wallet; onChange: Reload }) {
  const rule = wallet.auto_top_up;
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  if (wallet.payment_methods.length === 0) return <Empty>Save a card to turn on automatic top-ups.</Empty>;
  const submit = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    setBusy(true);
    setError(undefined);
    try {
      const done = await ok(
        api.PUT('/v1/wallet/auto-top-up', {
          body: {
            threshold_tft_units: Math.round(Number(f.get('threshold')) * 1e7),
            amount_cents: Math.round(Number(f.get('amount')) * 100),
            monthly_cap_cents: Math.round(Number(f.get('cap')) * 100),
            payment_method_id: String(f.get('card')),
          },
          params: { header: { 'Idempotency-Key': idempotencyKey() } as never },
        }),
      );
      onChange(done.version);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const off = async () => {
    setBusy(true);
    try {
      const done = await ok(api.DELETE('/v1/wallet/auto-top-up', { params: { header: { 'Idempotency-Key': idempotencyKey() } as never } }));
      onChange(done.version);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const bad = error instanceof Problem ? error.field : undefined;
  return (
    <form onSubmit={submit} aria-label="Automatic top-up">
      <p>{rule ? `On: below ${tft(rule.threshold_tft_units)}, add ${cents(rule.amount_cents)} (at most ${cents(rule.monthly_cap_cents)} a month).` : 'Off.'}</p>
      <div class="filters">
        <label>
          When the balance falls below (TFT)
          <input name="threshold" type="number" min={0} step="any" required defaultValue={rule ? String(rule.threshold_tft_units / 1e7) : '10'} aria-invalid={bad === 'threshold_tft_units' ? 'true' : undefined} />
        </label>
        <label>
          Add (USD)
          <input name="amount" type="number" min={5} step="0.01" required defaultValue={rule ? String(rule.amount_cents / 100) : '20'} aria-invalid={bad === 'amount_cents' ? 'true' : undefined} />
        </label>
        <label>
          At most a month (USD)
          <input name="cap" type="number" min={5} step="0.01" required defaultValue={rule ? String(rule.monthly_cap_cents / 100) : '100'} aria-invalid={bad === 'monthly_cap_cents' ? 'true' : undefined} />
        </label>
        <label>
          Card
          <select name="card" defaultValue={rule?.payment_method_id ?? wallet.payment_methods.find((c) => c.default)?.payment_method_id}>
            {wallet.payment_methods.map((c) => (
              <option key={c.payment_method_id} value={c.payment_method_id}>
                {c.brand} •••• {c.last4}
              </option>
            ))}
          </select>
        </label>
      </div>
      {error ? <ProblemView error={error} onReload={onChange} /> : null}
      <button type="submit" aria-busy={busy} disabled={busy}>{rule ? 'Change the rule' : 'Turn on'}</button>{' '}
      {rule && <button type="button" class="secondary" disabled={busy} onClick={off}>Turn off</button>}
    </form>
  );
}

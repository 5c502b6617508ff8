// Deploy a VM or a Kubernetes cluster. Every change is checked by the API
// itself (POST /v1/quotes validates the spec as a deployment would): its
// problem document's `field` marks the input at fault, and a valid spec
// shows its price. Submitting asks for the deployment (POST
// /v1/deployments, with an Idempotency-Key so a retry asks once).

import { useEffect, useMemo, useState } from 'preact/hooks';
import { useLocation, useSearch } from 'wouter-preact';
import { api, ok, idempotencyKey, Problem, type Schemas } from '../../api/client';
import { ProblemView } from '../../components/state';
import { tft, usdUnits } from '../../components/format';

type Spec = Schemas['SpecBody'];

interface Form {
  kind: 'vm' | 'kubernetes';
  name: string;
  cpu: string;
  memory_mib: string;
  rootfs_gb: string;
  disks_gb: string;
  masters: string;
  workers: string;
  worker_cpu: string;
  worker_memory_mib: string;
  worker_rootfs_gb: string;
  public_ipv4: boolean;
  image: string;
  ssh_key: string;
  country: string;
  farm_id: string;
  certified_only: boolean;
  min_uptime_bps: string;
}

const START: Form = {
  kind: 'vm',
  name: '',
  cpu: '2',
  memory_mib: '4096',
  rootfs_gb: '20',
  disks_gb: '',
  masters: '1',
  workers: '2',
  worker_cpu: '2',
  worker_memory_mib: '4096',
  worker_rootfs_gb: '20',
  public_ipv4: false,
  image: 'https://hub.grid.tf/tf-official-apps/base:latest.flist',
  ssh_key: '',
  country: '',
  farm_id: '',
  certified_only: false,
  min_uptime_bps: '',
};

const int = (s: string) => (s.trim() === '' ? NaN : Number(s));

function spec(f: Form): Spec {
  const size = { cpu: int(f.cpu), memory_mib: int(f.memory_mib), rootfs_gb: int(f.rootfs_gb) };
  if (f.kind === 'vm') {
    const disks = f.disks_gb.split(',').map((d) => d.trim()).filter(Boolean).map(Number);
    return { kind: 'vm', size, disks_gb: disks, public_ipv4: f.public_ipv4, image: f.image, ssh_key: f.ssh_key } as Spec;
  }
  return {
    kind: 'kubernetes',
    masters: int(f.masters),
    workers: int(f.workers),
    master_size: size,
    worker_size: { cpu: int(f.worker_cpu), memory_mib: int(f.worker_memory_mib), rootfs_gb: int(f.worker_rootfs_gb) },
    public_ipv4: f.public_ipv4,
    image: f.image,
    ssh_key: f.ssh_key,
  } as Spec;
}

function placement(f: Form) {
  const p: Record<string, unknown> = {};
  if (f.country.trim()) p.country = f.country.trim();
  if (f.farm_id.trim()) p.farm_id = int(f.farm_id);
  if (f.certified_only) p.certified_only = true;
  if (f.min_uptime_bps.trim()) p.min_uptime_bps = int(f.min_uptime_bps);
  return Object.keys(p).length ? p : undefined;
}

/** Which input a problem's `field` points at. */
function inputOf(field: string | undefined, kind: Form['kind']): keyof Form | undefined {
  if (!field) return undefined;
  const f = field.replace(/^spec\./, '');
  const map: Record<string, keyof Form> = {
    name: 'name',
    'size.cpu': 'cpu',
    'size.memory_mib': 'memory_mib',
    'size.rootfs_gb': 'rootfs_gb',
    'master_size.cpu': 'cpu',
    'master_size.memory_mib': 'memory_mib',
    'master_size.rootfs_gb': 'rootfs_gb',
    'worker_size.cpu': 'worker_cpu',
    'worker_size.memory_mib': 'worker_memory_mib',
    'worker_size.rootfs_gb': 'worker_rootfs_gb',
    masters: 'masters',
    workers: 'workers',
    image: 'image',
    ssh_key: 'ssh_key',
    public_ipv4: 'public_ipv4',
    'placement.country': 'country',
    'placement.farm_id': 'farm_id',
    'placement.min_uptime_bps': 'min_uptime_bps',
  };
  if (f.startsWith('disks_gb')) return kind === 'vm' ? 'disks_gb' : undefined;
  return map[f];
}

export function Deploy() {
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const [form, setForm] = useState<Form>({
    ...START,
    farm_id: search.get('farm_id') ?? '',
    country: search.get('country') ?? '',
  });
  const [quote, setQuote] = useState<Schemas['QuoteBody']>();
  const [check, setCheck] = useState<Problem | null>(null);
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  // Field errors show on what the user has touched, or everywhere once they submit.
  const [touched, setTouched] = useState<Set<keyof Form>>(new Set(['farm_id', 'country']));
  const [submitted, setSubmitted] = useState(false);
  const key = useMemo(idempotencyKey, [form]);

  // Live validation and price, by the API, a moment after each change.
  useEffect(() => {
    const t = setTimeout(() => {
      ok(api.POST('/v1/quotes', { body: { spec: spec(form), certified: form.certified_only } }))
        .then((q) => {
          setQuote(q);
          setCheck(null);
        })
        .catch((e) => {
          setQuote(undefined);
          setCheck(e instanceof Problem ? e : new Problem(0, { title: String(e) }));
        });
    }, 350);
    return () => clearTimeout(t);
  }, [form]);

  const problem = (submitError instanceof Problem ? submitError : null) ?? check;
  const faulty = inputOf(problem?.field, form.kind);
  const badInput = faulty && (submitted || touched.has(faulty)) ? faulty : undefined;
  const set = <K extends keyof Form>(k: K) => (e: Event) => {
    const el = e.currentTarget as HTMLInputElement;
    setSubmitError(null);
    if (!touched.has(k)) setTouched(new Set([...touched, k]));
    setForm({ ...form, [k]: el.type === 'checkbox' ? el.checked : el.value });
  };
  const field = (k: keyof Form, label: string, props: Record<string, unknown> = {}) => {
    const bad = badInput === k;
    return (
      <label>
        {label}
        <input
          name={k}
          value={form[k] as string}
          onInput={set(k)}
          aria-invalid={bad ? 'true' : undefined}
          aria-describedby={bad ? `${k}-error` : undefined}
          {...props}
        />
        {bad && (
          <small id={`${k}-error`} class="field-error">
            {problem?.message}
          </small>
        )}
      </label>
    );
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setSubmitted(true);
    setBusy(true);
    setSubmitError(null);
    try {
      const accepted = await ok(
        api.POST('/v1/deployments', {
          body: { name: form.name, spec: spec(form), placement: placement(form) } as Schemas['RequestDeploymentBody'],
          params: { header: { 'Idempotency-Key': key } as never },
        }),
      );
      navigate(`/deployments/${accepted.id}`);
    } catch (err) {
      setSubmitError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section>
      <h1>Deploy</h1>
      <form onSubmit={submit} aria-label="New deployment" noValidate>
        <fieldset>
          <legend>What</legend>
          <label>
            <input type="radio" name="kind" value="vm" checked={form.kind === 'vm'} onChange={() => setForm({ ...form, kind: 'vm' })} />
            A virtual machine
          </label>
          <label>
            <input
              type="radio"
              name="kind"
              value="kubernetes"
              checked={form.kind === 'kubernetes'}
              onChange={() => setForm({ ...form, kind: 'kubernetes' })}
            />
            A Kubernetes cluster
          </label>
        </fieldset>
        {field('name', 'Name', { required: true, placeholder: 'web1' })}
        <div class="grid-2">
          <fieldset>
            <legend>{form.kind === 'vm' ? 'Size' : 'Each master'}</legend>
            {field('cpu', 'vCPUs', { type: 'number', min: 1 })}
            {field('memory_mib', 'Memory (MiB)', { type: 'number', min: 256, step: 256 })}
            {field('rootfs_gb', 'Root disk (GB)', { type: 'number', min: 1 })}
            {form.kind === 'vm' && field('disks_gb', 'Extra disks (GB, comma-separated)', { placeholder: '50, 100' })}
            {form.kind === 'kubernetes' && field('masters', 'Masters', { type: 'number', min: 1 })}
          </fieldset>
          {form.kind === 'kubernetes' && (
            <fieldset>
              <legend>Each worker</legend>
              {field('workers', 'Workers', { type: 'number', min: 0 })}
              {field('worker_cpu', 'vCPUs', { type: 'number', min: 1 })}
              {field('worker_memory_mib', 'Memory (MiB)', { type: 'number', min: 256, step: 256 })}
              {field('worker_rootfs_gb', 'Root disk (GB)', { type: 'number', min: 1 })}
            </fieldset>
          )}
        </div>
        {field('image', 'Image (flist URL)')}
        <label>
          SSH public key
          <textarea
            name="ssh_key"
            rows={2}
            value={form.ssh_key}
            onInput={set('ssh_key')}
            aria-invalid={badInput === 'ssh_key' ? 'true' : undefined}
            aria-describedby={badInput === 'ssh_key' ? 'ssh_key-error' : undefined}
            placeholder="ssh-ed25519 AAAA… you@laptop"
          />
          {badInput === 'ssh_key' && (
            <small id="ssh_key-error" class="field-error">
              {problem?.message}
            </small>
          )}
        </label>
        <label>
          <input type="checkbox" role="switch" name="public_ipv4" checked={form.public_ipv4} onChange={set('public_ipv4')} />
          A public IPv4 address
        </label>
        <details>
          <summary>Placement</summary>
          <div class="filters">
            {field('country', 'Country')}
            {field('farm_id', 'Farm id', { type: 'number', min: 1 })}
            {field('min_uptime_bps', 'Minimum uptime (basis points)', { type: 'number', min: 0, max: 10000 })}
          </div>
          <label>
            <input type="checkbox" name="certified_only" checked={form.certified_only} onChange={set('certified_only')} />
            Certified nodes only
          </label>
        </details>
        <output aria-live="polite" class="quote">
          {quote ? (
            <article>
              <strong>
                {usdUnits(quote.discounted_monthly_usd_units)} a month ({tft(quote.discounted_monthly_tft_units)})
              </strong>
              <br />
              <small>
                {usdUnits(quote.discounted_hourly_usd_units)} an hour · {quote.cu_milli / 1000} CU, {quote.su_milli / 1000} SU
                {quote.ipv4 > 0 && `, ${quote.ipv4} IPv4`}
                {quote.discount_percent > 0 && ` · ${quote.discount} discount ${quote.discount_percent}%`}
              </small>
            </article>
          ) : check && faulty && !badInput ? (
            <p>Complete the form to see its price.</p>
          ) : check && !faulty ? (
            <ProblemView error={check} />
          ) : null}
        </output>
        {submitError && !(submitError instanceof Problem && badInput) ? <ProblemView error={submitError} /> : null}
        <button type="submit" aria-busy={busy} disabled={busy}>
          Deploy {form.kind === 'vm' ? 'the VM' : 'the cluster'}
        </button>
      </form>
    </section>
  );
}

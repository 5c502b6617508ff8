// The operator's review queue of provider requests (oldest first), filtered
// by status: approve, reject with a reason, or ask the provider a question.

import { useState } from 'preact/hooks';
import { useLocation, useSearch } from 'wouter-preact';
import { api, ok, type Schemas } from '../../api/client';
import { Empty, Loaded, ProblemView, formFields, useAction, useAsync } from '../../components/state';
import { when } from '../../components/format';
import { REQUEST_STATUS, listRequests, requestAt, type RequestStatus } from '../provider/Home';

type Request = Schemas['ProviderRequestBody'];
const STATUSES: RequestStatus[] = ['submitted', 'information_requested', 'approved', 'rejected', 'withdrawn'];

export function OperatorHome() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const status = new URLSearchParams(search).get('status') ?? 'open';
  const queue = useAsync(async () => {
    if (status === 'all') return listRequests();
    if (status !== 'open') return listRequests(status as RequestStatus);
    // Waiting on someone: new and re-submitted ones, and those asked about.
    const [a, b] = await Promise.all([listRequests('submitted'), listRequests('information_requested')]);
    return { items: [...a.items, ...b.items].sort((x, y) => x.submitted_at.localeCompare(y.submitted_at)) };
  }, [status]);
  return (
    <section>
      <h1>Review queue</h1>
      <label>
        Show
        <select value={status} onChange={(e) => navigate(`/operator?status=${(e.currentTarget as HTMLSelectElement).value}`)}>
          <option value="open">Open (submitted or asked about)</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {REQUEST_STATUS[s]}
            </option>
          ))}
          <option value="all">Every request</option>
        </select>
      </label>
      <Loaded async={queue}>
        {(p) =>
          p.items.length === 0 ? (
            <Empty>No request in this state.</Empty>
          ) : (
            <div class="cards">
              {p.items.map((r) => (
                <Review key={r.farm_id} request={r} onChange={queue.reload} />
              ))}
            </div>
          )
        }
      </Loaded>
    </section>
  );
}

type Decision = 'approve' | 'reject' | 'ask';

function Review({ request: r, onChange }: { request: Request; onChange: () => void }) {
  const [mode, setMode] = useState<Decision | null>(null);
  const decide = useAction(async (d: Decision, text: string) => {
    const path = { farm_id: r.farm_id };
    const done =
      d === 'approve'
        ? await ok(api.POST('/v1/provider-requests/{farm_id}/approve', { params: { path }, body: { note: text || null } }))
        : d === 'reject'
          ? await ok(api.POST('/v1/provider-requests/{farm_id}/reject', { params: { path }, body: { reason: text } }))
          : await ok(api.POST('/v1/provider-requests/{farm_id}/request-information', { params: { path }, body: { question: text } }));
    await requestAt(r.farm_id, done.version);
    setMode(null);
  }, onChange);
  const open = r.status === 'submitted' || r.status === 'information_requested';
  const label: Record<Decision, string> = { approve: 'Note (optional)', reject: 'Reason (shown to the provider)', ask: 'Question for the provider' };
  const confirm: Record<Decision, string> = { approve: 'Approve', reject: 'Reject', ask: 'Ask' };
  return (
    <article data-request={r.farm_id} aria-labelledby={`review-${r.farm_id}`}>
      <header>
        <strong id={`review-${r.farm_id}`}>
          Farm {r.farm_id} · {r.company}
        </strong>{' '}
        <span class={`status status-${r.status}`}>{REQUEST_STATUS[r.status] ?? r.status}</span>
      </header>
      <dl class="facts">
        <dt>Provider</dt>
        <dd>{r.provider}</dd>
        <dt>Contact</dt>
        <dd>{r.contact_email}</dd>
        <dt>Country</dt>
        <dd>{r.country}</dd>
        <dt>Nodes</dt>
        <dd>{r.node_ids.join(', ')}</dd>
        <dt>Round</dt>
        <dd>
          {r.round}, submitted {when(r.submitted_at)}
        </dd>
        {r.message && (
          <>
            <dt>Message</dt>
            <dd>{r.message}</dd>
          </>
        )}
        {r.last_question && (
          <>
            <dt>Asked</dt>
            <dd>{r.last_question}</dd>
          </>
        )}
        {r.last_answer && (
          <>
            <dt>Answered</dt>
            <dd data-testid="answer">{r.last_answer}</dd>
          </>
        )}
        {r.last_reason && (
          <>
            <dt>Rejected because</dt>
            <dd>{r.last_reason}</dd>
          </>
        )}
      </dl>
      {open && (
        <footer>
          <div role="group">
            <button onClick={() => setMode('approve')} aria-pressed={mode === 'approve'}>
              Approve…
            </button>
            <button class="secondary" onClick={() => setMode('ask')} aria-pressed={mode === 'ask'}>
              Ask a question…
            </button>
            <button class="contrast" onClick={() => setMode('reject')} aria-pressed={mode === 'reject'}>
              Reject…
            </button>
          </div>
          {mode && (
            <form onSubmit={(e) => void decide.run(mode, formFields(e).text ?? '')}>
              <label>
                {label[mode]}
                <textarea name="text" rows={2} required={mode !== 'approve'} />
              </label>
              <button type="submit" aria-busy={decide.busy} disabled={decide.busy}>
                {confirm[mode]} farm {r.farm_id}
              </button>{' '}
              <button type="button" class="secondary outline" onClick={() => setMode(null)}>
                Never mind
              </button>
            </form>
          )}
          {decide.error ? <ProblemView error={decide.error} onReload={onChange} /> : null}
        </footer>
      )}
    </article>
  );
}

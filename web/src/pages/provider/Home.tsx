// The provider's requests to sell a farm (GET /v1/provider-requests gives a
// provider their own): each with its status and the reviewers' question to
// answer, and the form to apply (again, after a rejection).

import { api, ok, Problem, type Query, type Schemas } from '../../api/client';
import { Empty, Loaded, ProblemView, formFields, useAction, useAsync } from '../../components/state';
import { when } from '../../components/format';

type Request = Schemas['ProviderRequestBody'];

/** Reads a request back at the version a command answered with. */
export async function requestAt(farmId: number, version: number) {
  return ok(api.GET('/v1/provider-requests/{farm_id}', { params: { path: { farm_id: farmId }, query: { min_version: version } } }));
}

/** GET /v1/provider-requests, all of them or those in one status. */
export type RequestStatus = NonNullable<Query<'list_provider_requests'>['status']>;

export async function listRequests(status?: RequestStatus) {
  return ok(api.GET('/v1/provider-requests', { params: { query: { limit: 100, ...(status ? { status } : {}) } } }));
}

export const REQUEST_STATUS: Record<string, string> = {
  submitted: 'Submitted, waiting for review',
  information_requested: 'The reviewers asked a question',
  approved: 'Approved',
  rejected: 'Rejected',
  withdrawn: 'Withdrawn',
};

export function ProviderHome() {
  const list = useAsync(() => listRequests(), []);
  return (
    <section>
      <h1>Provider requests</h1>
      <Loaded async={list}>
        {(p) =>
          p.items.length === 0 ? (
            <Empty>You have not applied to sell a farm yet.</Empty>
          ) : (
            <div class="cards">
              {p.items.map((r) => (
                <RequestCard key={r.farm_id} request={r} onChange={list.reload} />
              ))}
            </div>
          )
        }
      </Loaded>
      <Apply onDone={list.reload} />
    </section>
  );
}

function RequestCard({ request: r, onChange }: { request: Request; onChange: () => void }) {
  const answer = useAction(async (text: string) => {
    const done = await ok(api.POST('/v1/provider-requests/{farm_id}/answer', { params: { path: { farm_id: r.farm_id } }, body: { answer: text } }));
    await requestAt(r.farm_id, done.version);
  }, onChange);
  const withdraw = useAction(async () => {
    const done = await ok(api.POST('/v1/provider-requests/{farm_id}/withdraw', { params: { path: { farm_id: r.farm_id } }, body: {} }));
    await requestAt(r.farm_id, done.version);
  }, onChange);
  const open = r.status === 'submitted' || r.status === 'information_requested';
  return (
    <article data-request={r.farm_id} aria-labelledby={`request-${r.farm_id}`}>
      <header>
        <strong id={`request-${r.farm_id}`}>Farm {r.farm_id}</strong> · {r.company}{' '}
        <span class={`status status-${r.status}`} data-testid="request-status">
          {REQUEST_STATUS[r.status] ?? r.status}
        </span>
      </header>
      <dl class="facts">
        <dt>Nodes</dt>
        <dd>{r.node_ids.join(', ')}</dd>
        <dt>Country</dt>
        <dd>{r.country}</dd>
        <dt>Contact</dt>
        <dd>{r.contact_email}</dd>
        <dt>Round</dt>
        <dd>{r.round}</dd>
        <dt>Submitted</dt>
        <dd>{when(r.submitted_at)}</dd>
        {r.last_question && (
          <>
            <dt>Question</dt>
            <dd data-testid="question">{r.last_question}</dd>
          </>
        )}
        {r.last_answer && (
          <>
            <dt>Your answer</dt>
            <dd>{r.last_answer}</dd>
          </>
        )}
        {r.last_reason && (
          <>
            <dt>Why rejected</dt>
            <dd class="error">{r.last_reason}</dd>
          </>
        )}
      </dl>
      {r.status === 'information_requested' && (
        <form
          onSubmit={(e) => {
            const f = formFields(e);
            void answer.run(f.answer);
          }}
        >
          <label>
            Your answer
            <textarea name="answer" required rows={2} />
          </label>
          <button type="submit" aria-busy={answer.busy} disabled={answer.busy}>
            Send the answer
          </button>
          {answer.error ? <ProblemView error={answer.error} onReload={onChange} /> : null}
        </form>
      )}
      {open && (
        <footer>
          <button class="secondary" aria-busy={withdraw.busy} disabled={withdraw.busy} onClick={() => void withdraw.run()}>
            Withdraw the request
          </button>
          {withdraw.error ? <ProblemView error={withdraw.error} onReload={onChange} /> : null}
        </footer>
      )}
    </article>
  );
}

function Apply({ onDone }: { onDone: () => void }) {
  const submit = useAction(async (f: Record<string, string>) => {
    const farmId = Number(f.farm_id);
    const done = await ok(
      api.POST('/v1/provider-requests', {
        body: {
          company: f.company,
          contact_email: f.contact_email,
          country: f.country,
          farm_id: farmId,
          node_ids: f.node_ids.split(/[\s,]+/).filter(Boolean).map(Number),
          message: f.message || null,
        },
      }),
    );
    await requestAt(farmId, done.version);
  }, onDone);
  const field = submit.error instanceof Problem ? submit.error.field : undefined;
  const input = (name: string, label: string, props: Record<string, unknown> = {}) => (
    <label>
      {label}
      <input name={name} required aria-invalid={field === name ? 'true' : undefined} {...props} />
    </label>
  );
  return (
    <details open>
      <summary>Apply to sell a farm</summary>
      <form
        aria-label="Apply to sell a farm"
        onSubmit={(e) => {
          const f = formFields(e);
          const form = e.currentTarget as HTMLFormElement;
          void submit.run(f).then((ok) => ok && form.reset());
        }}
      >
        <div class="filters">
          {input('company', 'Company')}
          {input('contact_email', 'Contact e-mail', { type: 'email' })}
          {input('farm_id', 'Farm id', { type: 'number', min: 1 })}
          {input('country', 'Country')}
          {input('node_ids', 'Node ids (comma-separated)', { pattern: '[0-9, ]+' })}
        </div>
        <label>
          Message to the reviewers (optional)
          <textarea name="message" rows={2} />
        </label>
        <button type="submit" aria-busy={submit.busy} disabled={submit.busy}>
          Send the request
        </button>
        {submit.error ? <ProblemView error={submit.error} onReload={() => { submit.clear(); onDone(); }} /> : null}
      </form>
    </details>
  );
}

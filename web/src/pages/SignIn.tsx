// Sign in: the configured issuer in production; in dev mode, "sign in as"
// any subject with any roles (tokens minted by POST /dev/token).

import { useState } from 'preact/hooks';
import { config } from '../config';
import { devSignIn } from '../auth/dev';
import { oidcSignIn, signInError } from '../auth/oidc';
import { ROLES, type Role } from '../auth/session';
import { ROLE_LABEL } from '../routes';

export function SignIn() {
  const mode = config().auth.mode;
  return (
    <article class="sign-in">
      <h1>Sign in to the marketplace console</h1>
      {mode === 'dev' ? <DevSignIn /> : <OidcSignIn />}
    </article>
  );
}

function OidcSignIn() {
  const [error, setError] = useState<string>();
  return (
    <>
      <p>You will be sent to your organisation's sign-in page and back.</p>
      {signInError.value && (
        <p role="alert" class="error">
          Signing in did not finish: {signInError.value}
        </p>
      )}
      <button onClick={() => oidcSignIn(window.location.pathname + window.location.search + window.location.hash).catch((e) => setError(String(e)))}>Sign in</button>
      {error && <p role="alert">{error}</p>}
    </>
  );
}

function DevSignIn() {
  const [sub, setSub] = useState('alice');
  const [chosen, setChosen] = useState<Role[]>(['cloud-user']);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await devSignIn(sub.trim(), chosen);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit}>
      <p>
        <mark>Development mode</mark> Sign in as anyone: the dev server mints the token.
      </p>
      <label>
        Subject
        <input name="subject" value={sub} required onInput={(e) => setSub(e.currentTarget.value)} autocomplete="username" />
      </label>
      <fieldset>
        <legend>Roles</legend>
        {ROLES.map((r) => (
          <label key={r}>
            <input
              type="checkbox"
              name="role"
              value={r}
              checked={chosen.includes(r)}
              onChange={(e) =>
                setChosen(e.currentTarget.checked ? [...chosen, r] : chosen.filter((x) => x !== r))
              }
            />
            {ROLE_LABEL[r]}
          </label>
        ))}
      </fieldset>
      {error && <p role="alert" class="error">{error}</p>}
      <button type="submit" aria-busy={busy} disabled={busy || !sub.trim() || chosen.length === 0}>
        Sign in as {sub || '…'}
      </button>
    </form>
  );
}

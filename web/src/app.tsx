// The shell: header with the signed-in roles' menus, the routes table
// behind a per-role guard, and the sign-in page.

import { Route, Switch, Link, useLocation, Redirect } from 'wouter-preact';
import { ROUTES, ROLE_LABEL, HOME } from './routes';
import { session, roles, hasRole, signOut } from './auth/session';
import { SignIn } from './pages/SignIn';
import { UnreadBadge } from './pages/user/Notifications';

function Menu() {
  const [location] = useLocation();
  const mine = roles.value;
  return (
    <nav class="menu" aria-label="Main">
      <ul>
        <li>
          <Link href="/" class="brand">
            <strong>Marketplace</strong>
          </Link>
        </li>
      </ul>
      <ul class="links">
        {mine.flatMap((role) =>
          ROUTES.filter((r) => r.role === role && r.nav).map((r) => (
            <li key={r.path}>
              <Link href={r.path} aria-current={location === r.path ? 'page' : undefined}>
                {r.nav}
                {r.path === '/notifications' && <UnreadBadge />}
              </Link>
            </li>
          )),
        )}
        <li>
          <details class="dropdown">
            <summary>{session.value?.subject}</summary>
            <ul dir="rtl">
              <li>
                <span>{mine.map((r) => ROLE_LABEL[r]).join(', ')}</span>
              </li>
              <li>
                <a href="#" onClick={(e) => { e.preventDefault(); void signOut(); }}>
                  Sign out
                </a>
              </li>
            </ul>
          </details>
        </li>
      </ul>
    </nav>
  );
}

function NotYours() {
  return (
    <section>
      <h1>Not available</h1>
      <p>This page belongs to another role than yours.</p>
    </section>
  );
}

export function App() {
  const s = session.value;
  if (!s) {
    return (
      <main class="container">
        <SignIn />
      </main>
    );
  }
  const first = s.roles[0];
  return (
    <>
      <header class="container">
        <Menu />
      </header>
      <main class="container">
        <Switch>
          {ROUTES.map((r) => (
            <Route key={r.path} path={r.path} component={hasRole(r.role) ? r.component : NotYours} />
          ))}
          <Route path="/">{first ? <Redirect to={HOME[first]} replace /> : <NotYours />}</Route>
          <Route path="/sign-in">{first ? <Redirect to={HOME[first]} replace /> : <NotYours />}</Route>
          <Route>
            <section>
              <h1>Not found</h1>
              <p>
                There is no such page. <Link href="/">Home</Link>
              </p>
            </section>
          </Route>
        </Switch>
      </main>
    </>
  );
}

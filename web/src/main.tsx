import { render } from 'preact';
import '@picocss/pico/css/pico.min.css';
import './style.css';
import { loadConfig } from './config';
import { restoreDevSession } from './auth/dev';
import { startOidc, SILENT_PATH } from './auth/oidc';
import { App } from './app';

async function start() {
  const root = document.getElementById('app')!;
  try {
    const cfg = await loadConfig();
    if (cfg.auth.mode === 'dev') restoreDevSession();
    else await startOidc(cfg.auth);
    if (window.location.pathname === SILENT_PATH) return;
    render(<App />, root);
  } catch (e) {
    root.innerHTML = '';
    const p = document.createElement('p');
    p.setAttribute('role', 'alert');
    p.textContent = e instanceof Error ? e.message : String(e);
    root.append(p);
  }
}

void start();

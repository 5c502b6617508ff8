// Every page of the console: its path, the role it belongs to and, when it
// has one, its menu entry. The menus show only the signed-in user's roles.
// Provider and operator pages go under pages/provider/ and pages/operator/.

import type { FunctionComponent } from 'preact';
import type { Role } from './auth/session';
import { Nodes } from './pages/user/Nodes';
import { Countries } from './pages/user/Countries';
import { Deploy } from './pages/user/Deploy';
import { Deployments } from './pages/user/Deployments';
import { DeploymentDetail } from './pages/user/DeploymentDetail';
import { Wallet } from './pages/user/Wallet';
import { Notifications } from './pages/user/Notifications';
import { ProviderHome } from './pages/provider/Home';
import { ProviderNodes } from './pages/provider/Nodes';
import { ProviderMaintenance } from './pages/provider/Maintenance';
import { ProviderAlliances, ProviderAlliance } from './pages/provider/Alliances';
import { OperatorHome } from './pages/operator/Home';
import { Pricing } from './pages/operator/Pricing';
import { DeadLetters } from './pages/operator/DeadLetters';
import { Audit, Correlation } from './pages/operator/Audit';
import { Overview } from './pages/operator/Overview';

export interface PageRoute {
  path: string;
  role: Role;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  component: FunctionComponent<any>;
  /** The menu entry, if the page has one. */
  nav?: string;
}

export const ROUTES: PageRoute[] = [
  { path: '/nodes', role: 'cloud-user', component: Nodes, nav: 'Nodes' },
  { path: '/nodes/countries', role: 'cloud-user', component: Countries, nav: 'Countries' },
  { path: '/deploy', role: 'cloud-user', component: Deploy, nav: 'Deploy' },
  { path: '/deployments', role: 'cloud-user', component: Deployments, nav: 'Deployments' },
  { path: '/deployments/:id', role: 'cloud-user', component: DeploymentDetail },
  { path: '/wallet', role: 'cloud-user', component: Wallet, nav: 'Wallet' },
  { path: '/notifications', role: 'cloud-user', component: Notifications, nav: 'Notifications' },

  { path: '/provider', role: 'cloud-provider', component: ProviderHome, nav: 'Requests' },
  { path: '/provider/nodes', role: 'cloud-provider', component: ProviderNodes, nav: 'My nodes' },
  { path: '/provider/maintenance', role: 'cloud-provider', component: ProviderMaintenance, nav: 'Maintenance' },
  { path: '/provider/alliances', role: 'cloud-provider', component: ProviderAlliances, nav: 'Alliances' },
  { path: '/provider/alliances/:id', role: 'cloud-provider', component: ProviderAlliance },

  { path: '/operator', role: 'cloud-operator', component: OperatorHome, nav: 'Review queue' },
  { path: '/operator/pricing', role: 'cloud-operator', component: Pricing, nav: 'Pricing' },
  { path: '/operator/dead-letters', role: 'cloud-operator', component: DeadLetters, nav: 'Dead letters' },
  { path: '/operator/audit', role: 'cloud-operator', component: Audit, nav: 'Audit' },
  { path: '/operator/audit/correlations/:id', role: 'cloud-operator', component: Correlation },
  { path: '/operator/overview', role: 'cloud-operator', component: Overview, nav: 'Overview' },
];

export const ROLE_LABEL: Record<Role, string> = {
  'cloud-user': 'Cloud user',
  'cloud-provider': 'Provider',
  'cloud-operator': 'Operator',
};

/** Where a role lands after signing in. */
export const HOME: Record<Role, string> = {
  'cloud-user': '/nodes',
  'cloud-provider': '/provider',
  'cloud-operator': '/operator',
};

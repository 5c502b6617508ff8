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
import { OperatorHome } from './pages/operator/Home';

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

  { path: '/provider', role: 'cloud-provider', component: ProviderHome, nav: 'Provider' },

  { path: '/operator', role: 'cloud-operator', component: OperatorHome, nav: 'Operator' },
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

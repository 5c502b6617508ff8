// Stripe.js, loaded as Stripe requires: a <script> from Stripe's own URL
// (config.stripe.js_url: js.stripe.com, or localstripe's test build in
// dev), never bundled. Types from @stripe/stripe-js.

import type { Stripe, StripeConstructor } from '@stripe/stripe-js';
import { config } from '../config';

let loading: Promise<Stripe | null> | null = null;

/** The Stripe object, or null when payments are not configured. */
export function stripe(): Promise<Stripe | null> {
  const cfg = config().stripe;
  if (!cfg) return Promise.resolve(null);
  loading ??= new Promise<Stripe | null>((resolve, reject) => {
    const make = () => {
      const ctor = (window as unknown as { Stripe?: StripeConstructor }).Stripe;
      if (!ctor) return reject(new Error('Stripe.js did not load.'));
      resolve(ctor(cfg.publishable_key));
    };
    if ((window as unknown as { Stripe?: unknown }).Stripe) return make();
    const s = document.createElement('script');
    s.src = cfg.js_url;
    s.async = true;
    s.onload = make;
    s.onerror = () => {
      loading = null;
      reject(new Error('Stripe.js could not be loaded; card payments are unavailable right now.'));
    };
    document.head.append(s);
  });
  return loading;
}

//! Background workers: process managers that react to events and external
//! feeds (provisioning, Stripe, the chain). None run yet; the projection
//! runners live in `marketplace-projections`.

//! HTTP adapter for the TFChain SIMULATOR (being written).

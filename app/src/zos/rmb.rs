//! RMB-over-HTTP adapter for the ZOS SIMULATOR (being written).

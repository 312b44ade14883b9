//! The database behind a seam: everything that speaks one engine's protocol
//! (connecting, error classes, server facts, the backend count) lives in
//! its module, so a second engine is an addition beside it.

pub mod postgres;

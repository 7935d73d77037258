//! The plugin runtime: sandboxed WebAssembly components (wasmtime, component model) that make
//! modgate's decisions. See `plugin-sdk/wit/plugin.wit` for the contract.

pub mod embedded;

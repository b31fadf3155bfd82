//! The one integration-test binary (each extra file in tests/ would link Polars again). Modules:
//! `harness` runs the real binary in temp folders and reads the store with the arrow-rs `parquet`
//! reader, independently of Polars; the others test one capability each.

mod harness;

mod analyze;
mod demo;
mod ingest;
mod pieces;
mod report;
mod restock;
mod store;

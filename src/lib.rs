//! coupond: a coupon microservice for loyalty programs.
//!
//! `domain` is pure logic, `store` the only module that touches the database, `api` the thin
//! HTTP layer; `app` wires them into a server and `cli` is the command line.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod jobs;
pub mod notify;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod supervisor;
pub mod telemetry;

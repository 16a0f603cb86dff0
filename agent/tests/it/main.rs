//! Integration tests of the agent: the real daemon over real HTTP on
//! loopback, a real SQLite file, real TLS to a central stand-in, and the
//! real binary for enrolment, restarts and crashes.

mod api;
mod binary;
mod central_double;
mod support;
mod sync;

//! rem-embed integration tests: the local model against sentence-transformers' own
//! vectors, and the OpenAI provider against a server on 127.0.0.1.

// Test helpers may panic: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

mod golden;
mod openai;

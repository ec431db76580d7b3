//! Test support: a small OpenAI-compatible embeddings server on 127.0.0.1. It answers
//! `POST /v1/embeddings` with deterministic vectors, counts requests, and can be told
//! to fail: the first N requests with a status, a wrong API key, or malformed replies.
#![allow(clippy::unwrap_used)] // test support: a panic is a test failure

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// How the server misbehaves.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// Fail this many requests first, with `fail_status`.
    pub fail_first: usize,
    /// Status of those failures.
    pub fail_status: u16,
    /// Required bearer token (401 otherwise).
    pub api_key: Option<String>,
    /// Reply with this body instead of embeddings.
    pub malformed: Option<String>,
    /// Vector length.
    pub dims: usize,
}

/// A running server.
pub struct MockServer {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    /// Requests received.
    pub requests: Arc<AtomicUsize>,
    /// Texts per successful embeddings request.
    pub inputs: Arc<Mutex<Vec<usize>>>,
}

/// Deterministic unit vector for a text (a hash spread over `dims` components).
pub fn vector_for(text: &str, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims)
        .map(|i| {
            let h = text
                .bytes()
                .fold(1469598103934665603u64 ^ i as u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(1099511628211)
                });
            ((h % 2000) as f32 / 1000.0) - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Starts a server on an ephemeral loopback port; it runs until the process ends.
pub fn start(behaviour: Behaviour) -> MockServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let inputs = Arc::new(Mutex::new(Vec::new()));
    let (r, i) = (requests.clone(), inputs.clone());
    std::thread::spawn(move || {
        // Bounded: a test makes far fewer requests than this.
        for stream in listener.incoming().take(10_000) {
            let Ok(stream) = stream else { continue };
            let (r, i, b) = (r.clone(), i.clone(), behaviour.clone());
            std::thread::spawn(move || serve(stream, &b, &r, &i));
        }
    });
    MockServer {
        base_url,
        requests,
        inputs,
    }
}

fn serve(stream: TcpStream, b: &Behaviour, requests: &AtomicUsize, inputs: &Mutex<Vec<usize>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let (mut length, mut auth) = (0usize, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization:") {
            auth = Some(h["authorization:".len()..].trim().to_string());
        }
    }
    let mut body = vec![0u8; length];
    // A client killed mid-request (the crash tests do that) just ends its connection.
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let n = requests.fetch_add(1, Ordering::SeqCst);
    let (status, reply) = if !line.starts_with("POST /v1/embeddings") {
        (404, json!({"error": {"message": "not found"}}).to_string())
    } else if b
        .api_key
        .as_ref()
        .is_some_and(|k| auth.as_deref() != Some(&format!("Bearer {k}")))
    {
        (
            401,
            json!({"error": {"message": "Incorrect API key provided"}}).to_string(),
        )
    } else if n < b.fail_first {
        (
            b.fail_status,
            json!({"error": {"message": "try again"}}).to_string(),
        )
    } else if let Some(m) = &b.malformed {
        (200, m.clone())
    } else {
        let req: Value = serde_json::from_slice(&body).unwrap();
        let texts: Vec<String> = req["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        inputs.lock().unwrap().push(texts.len());
        let data: Vec<Value> = texts
            .iter()
            .enumerate()
            .rev() // out of order on purpose: clients must use `index`
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector_for(t, b.dims)}))
            .collect();
        (
            200,
            json!({"object": "list", "data": data, "model": req["model"]}).to_string(),
        )
    };
    let text = match status {
        200 => "OK",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {text}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

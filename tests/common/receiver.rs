//! A real HTTP server for tests to point coupond at (webhook receivers, remote coupon sources):
//! it records every request and answers what the test's responder says.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use poem::{
    Body, Request, Response, Server,
    endpoint::make,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON request body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// What to answer, after an optional pause.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(body: serde_json::Value) -> Reply {
        Reply {
            status: 200,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(usize, &Received) -> Reply + Send + Sync;

pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    concurrency: Arc<Concurrency>,
}

/// Requests being answered now, and the most there ever were at once.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Receiver {
    /// Starts a server on a random port; `respond(n, request)` answers the n-th request (0-based).
    pub async fn start(
        respond: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let log = received.clone();
        let concurrency = Arc::new(Concurrency::default());
        let gauge = concurrency.clone();
        let endpoint = make(move |req: Request| {
            let (log, respond, gauge) = (log.clone(), respond.clone(), gauge.clone());
            async move {
                let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
                gauge.most.fetch_max(now, Ordering::SeqCst);
                let path = req.uri().path().to_string();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let body = req.into_body().into_vec().await.unwrap_or_default();
                let request = Received {
                    path,
                    headers,
                    body,
                };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                let reply = respond(n, &request);
                tokio::time::sleep(reply.delay).await;
                gauge.now.fetch_sub(1, Ordering::SeqCst);
                Response::builder()
                    .status(StatusCode::from_u16(reply.status).unwrap())
                    .content_type("application/json")
                    .body(Body::from_string(reply.body))
            }
        });
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind receiver");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("socket address")
            .port();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            received,
            concurrency,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The most requests this receiver was answering at once.
    pub fn most_at_once(&self) -> usize {
        self.concurrency.most.load(Ordering::SeqCst)
    }
}

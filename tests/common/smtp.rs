//! A real SMTP server for tests, on tokio: enough of the protocol for lettre (EHLO, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT). It records every accepted mail and refuses recipients it is told to
//! with a permanent 550.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// One accepted mail.
#[derive(Debug, Clone)]
pub struct Mail {
    pub rcpt_to: Vec<String>,
    /// The `To` header.
    pub to: String,
    pub subject: String,
    /// Everything after the headers: the MIME parts.
    pub body: String,
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<Mail>>,
    refused: Mutex<HashSet<String>>,
}

pub struct SmtpServer {
    pub port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        Self::start_on(0).await
    }

    /// Listens on `port` (0: any free port).
    pub async fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind SMTP");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, state.clone()));
            }
        });
        SmtpServer {
            port,
            shared,
            accept,
        }
    }

    /// A port nothing listens on (yet): the server is "down".
    pub async fn free_port() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        listener.local_addr().unwrap().port()
    }

    pub fn url(&self) -> String {
        url_for(self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// Refuses mail to `address` with 550 from now on.
    pub fn refuse(&self, address: &str) {
        self.shared
            .refused
            .lock()
            .unwrap()
            .insert(address.to_string());
    }

    pub fn accept(&self, address: &str) {
        self.shared.refused.lock().unwrap().remove(address);
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

pub fn url_for(port: u16) -> String {
    format!("smtp://127.0.0.1:{port}")
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 localhost test SMTP\r\n").await?;
    let mut rcpt_to = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-localhost\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            rcpt_to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let address = angle(&line);
            if shared.refused.lock().unwrap().contains(&address) {
                b"550 5.1.1 no such mailbox\r\n"
            } else {
                rcpt_to.push(address);
                b"250 OK\r\n"
            }
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = Vec::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push(l.strip_prefix('.').map_or(l.clone(), str::to_string));
            }
            let mail = parse(std::mem::take(&mut rcpt_to), &data);
            shared.mails.lock().unwrap().push(mail);
            b"250 OK queued\r\n"
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end].to_string()
}

/// Splits headers (unfolding continuation lines) from the body.
fn parse(rcpt_to: Vec<String>, data: &[String]) -> Mail {
    let blank = data.iter().position(|l| l.is_empty()).unwrap_or(data.len());
    let mut headers: Vec<String> = Vec::new();
    for line in &data[..blank] {
        match headers.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => headers.push(line.clone()),
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Mail {
        rcpt_to,
        to: header("To"),
        subject: header("Subject"),
        body: data[blank.min(data.len())..].join("\n"),
    }
}

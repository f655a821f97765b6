//! A private PostgreSQL cluster a test creates, starts and stops at will (the shared server is
//! never stopped), with the newest PostgreSQL installed. It lives in a temporary directory,
//! listens on a free loopback port, asks for a password over TCP, and is run as `postgres` when
//! the test runs as root.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Output},
};

/// Where Debian and Ubuntu install each PostgreSQL version's programs.
const VERSIONS: &str = "/usr/lib/postgresql";
pub const PASSWORD: &str = "outage-test";

pub struct Cluster {
    bin: PathBuf,
    base: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// Creates the cluster (not started); None when PostgreSQL's binaries are not installed.
    pub fn init() -> Option<Cluster> {
        let Some(bin) = newest_bin() else {
            eprintln!("no {VERSIONS}/*/bin/initdb: skipping");
            return None;
        };
        let base = std::env::temp_dir().join(format!("coupond-test-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("pw"), PASSWORD).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("-R").arg("postgres").arg(&base));
        }
        let cluster = Cluster {
            bin,
            port: free_port(),
            base,
            as_postgres,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--pwfile",
                &cluster.base.join("pw").display().to_string(),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        Some(cluster)
    }

    pub fn url(&self, password: &str, database: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=40",
            self.port,
            self.base.display()
        );
        let log = self.base.join("log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the cluster the way a crash does: no checkpoint, connections cut.
    pub fn kill(&self) {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn data(&self) -> String {
        self.base.join("data").display().to_string()
    }

    fn pg(&self, tool: &str, args: &[&str]) -> Output {
        run(self.command(tool).args(args).current_dir(&self.base))
    }

    /// A PostgreSQL tool, run as `postgres` when the test runs as root (PostgreSQL refuses root).
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The programs of the newest installed PostgreSQL.
fn newest_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(VERSIONS)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

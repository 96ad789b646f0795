//! Real `redis-server` processes for the tests: each on a free port of
//! 127.0.0.1, in a directory of its own, killed when dropped.

#![allow(dead_code)]

pub mod appends;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    tls: Option<ServerTls>,
}

/// A server that speaks TLS only (`--port 0 --tls-port`): its certificate
/// and key, the CA it checks client certificates against, and whether it
/// demands one (`--tls-auth-clients`). PEM files.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub auth_clients: bool,
}

impl ServerTls {
    /// redis-cli's arguments to talk to it: the CA, and the server's own
    /// certificate as the client's (signed by the same CA).
    fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["--tls".to_string(), "--cacert".into(), path(&self.ca)];
        args.extend([
            "--cert".into(),
            path(&self.cert),
            "--key".into(),
            path(&self.key),
        ]);
        args
    }

    fn server_args(&self, port: u16) -> Vec<String> {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&self.cert),
            "--tls-key-file".into(),
            path(&self.key),
            "--tls-ca-cert-file".into(),
            path(&self.ca),
            "--tls-auth-clients".into(),
            if self.auth_clients { "yes" } else { "no" }.into(),
        ]
    }
}

fn path(path: &std::path::Path) -> String {
    path.to_str().expect("a UTF-8 path").to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

impl RedisServer {
    /// A server without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A server with these extra arguments.
    pub fn start_with(args: &[&str]) -> RedisServer {
        RedisServer::start_full(args, None)
    }

    /// A server without persistence that speaks TLS only.
    pub fn start_tls(tls: ServerTls) -> RedisServer {
        RedisServer::start_full(&["--save", "", "--appendonly", "no"], Some(tls))
    }

    fn start_full(args: &[&str], tls: Option<ServerTls>) -> RedisServer {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("last-call-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
            extra: args.iter().map(|s| s.to_string()).collect(),
            tls,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let listen = match &self.tls {
            None => vec!["--port".to_string(), self.port.to_string()],
            Some(tls) => tls.server_args(self.port),
        };
        let child = Command::new("redis-server")
            .args(listen)
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (the project's setup installs it)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let out = Command::new("redis-cli")
                    .args(["-p", &self.port.to_string()])
                    .args(self.cli_tls())
                    .arg("ping")
                    .output();
                if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG")) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    /// `redis://`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn cli_tls(&self) -> Vec<String> {
        self.tls.as_ref().map_or(Vec::new(), ServerTls::cli_args)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and directory (empty unless it
    /// persisted).
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// A command through redis-cli, its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(self.cli_tls())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A local Redis Cluster: `primaries` primaries with one replica each,
/// created by `redis-cli --cluster create`, a node timeout of 1 s so that
/// a replica takes over quickly. Every node is killed when dropped.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(primaries: usize) -> RedisCluster {
        RedisCluster::start_full(primaries, None)
    }

    /// Every node TLS only, the cluster bus and replication included.
    pub fn start_tls(primaries: usize, tls: ServerTls) -> RedisCluster {
        RedisCluster::start_full(primaries, Some(tls))
    }

    fn start_full(primaries: usize, tls: Option<ServerTls>) -> RedisCluster {
        let mut args = vec![
            "--save",
            "",
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "1000",
            "--cluster-config-file",
            "nodes.conf",
        ];
        if tls.is_some() {
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
        }
        let nodes: Vec<RedisServer> = (0..primaries * 2)
            .map(|_| RedisServer::start_full(&args, tls.clone()))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(nodes[0].cli_tls())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok(&[]);
        cluster.wait_replicas_synced();
        cluster
    }

    /// Waits until every replica has finished its first sync: only then can
    /// it take over.
    pub fn wait_replicas_synced(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let synced = self.nodes.iter().all(|node| {
                let info = node.cli(&["INFO", "replication"]);
                info.contains("role:master") || info.contains("master_link_status:up")
            });
            if synced {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the replicas did not sync");
    }

    /// Kills node `victim` (a primary) with SIGKILL and waits until a
    /// replica serves its slots and the cluster is ok again.
    pub fn fail_over(&mut self, victim: usize) {
        let port = self.nodes[victim].port.to_string();
        self.nodes[victim].kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        let witness = (victim + 1) % self.nodes.len();
        while Instant::now() < deadline {
            let slots = self.nodes[witness].cli(&["CLUSTER", "SLOTS"]);
            let owners: Vec<&str> = slots.lines().collect();
            let still_owner = owners
                .windows(2)
                .any(|w| w[0] == "127.0.0.1" && w[1] == port);
            if !still_owner {
                self.wait_ok(&[victim]);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no replica took over from node {victim}");
    }

    /// Waits until every live node (not in `dead`) says the cluster is ok.
    pub fn wait_ok(&self, dead: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(at, _)| !dead.contains(at))
                .all(|(_, node)| node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not become ok");
    }

    /// `redis+cluster://` (`rediss+cluster://` over TLS) naming every node
    /// as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let scheme = if self.nodes[0].tls.is_some() {
            "rediss+cluster"
        } else {
            "redis+cluster"
        };
        format!("{scheme}://{}", seeds.join(","))
    }

    /// The node that is the primary for `key` now.
    pub fn primary_of(&self, key: &str) -> usize {
        let slot: u16 = self.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .unwrap();
        for (at, node) in self.nodes.iter().enumerate() {
            let role = node.cli(&["ROLE"]);
            if !role.starts_with("master") {
                continue;
            }
            let shards = node.cli(&["CLUSTER", "SLOTS"]);
            let lines: Vec<&str> = shards.lines().collect();
            // Flat redis-cli output: start, end, ip, port, id, ... per range.
            for window in lines.windows(4) {
                if let (Ok(start), Ok(end), Ok(port)) = (
                    window[0].parse::<u16>(),
                    window[1].parse::<u16>(),
                    window[3].parse::<u16>(),
                ) {
                    if (start..=end).contains(&slot)
                        && window[2] == "127.0.0.1"
                        && port == node.port
                    {
                        return at;
                    }
                }
            }
        }
        panic!("no primary for {key}");
    }
}

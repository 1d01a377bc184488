//! Test hosts in Linux network namespaces, and real partitions between them.
//!
//! Each member runs in a namespace of its own, reached at a service address (`10.99.0.N`, on
//! its loopback interface) that clients and peers dial alike. Clients (and this process's
//! workload) live in a hub namespace, joined to each member by a link of its own; each member
//! pair is joined by a link of its own too, and host routes with `src` send peer traffic over
//! its pair's link. The configuration store (moto's S3 server, in the hub at `10.98.0.1`) is
//! reached over a third link per member, so that it can be cut alone. A partition silently drops every packet leaving chosen link ends (a `tbf`
//! qdisc of 8 bit/s with room for one byte: no RST, no error, as a real partition looks);
//! healing removes the qdisc. Everything lives in namespaces made here and deleted on drop.

use std::fmt;
use std::process::Command;

/// The port every member listens on (each at its own service address).
pub const MEMBER_PORT: u16 = 7000;
/// Where the configuration store listens, in the hub.
pub const STORE_ENDPOINT: &str = "http://10.98.0.1:5000";
const STORE_IP: &str = "10.98.0.1";

/// Namespaces, links and routes for `members` members and a hub; deleted when dropped.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    members: usize,
}

/// One link end that a partition can silence: its namespace and interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEnd {
    namespace: String,
    interface: String,
}

/// A kind of partition among members `0..members` (the target is member `target`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Partition {
    /// The target and the next member cannot reach each other (both directions).
    PairCut,
    /// The target's packets to the next member are lost; the other direction works.
    OneWay,
    /// The target is cut from every other member; clients still reach it.
    PeersCut,
    /// The target is cut from everything: members and clients.
    Isolated,
    /// The target reaches both others, which cannot reach each other (a bridge member).
    Bridge,
    /// The target cannot reach the configuration store; everything else works.
    StoreCut,
}

impl Partition {
    /// Every kind.
    pub const ALL: [Partition; 6] = [
        Partition::PairCut,
        Partition::OneWay,
        Partition::PeersCut,
        Partition::Isolated,
        Partition::Bridge,
        Partition::StoreCut,
    ];

    fn name(self) -> &'static str {
        match self {
            Partition::PairCut => "pair-cut",
            Partition::OneWay => "one-way",
            Partition::PeersCut => "peers-cut",
            Partition::Isolated => "isolated",
            Partition::Bridge => "bridge",
            Partition::StoreCut => "store-cut",
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Partition {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Partition::ALL.into_iter().find(|kind| kind.name() == text).ok_or_else(|| {
            let names: Vec<_> = Partition::ALL.iter().map(|k| k.name()).collect();
            format!("unknown partition {text:?} (one of: {})", names.join(", "))
        })
    }
}

/// Runs `ip` (or `tc`) with `args`, failing with its error output.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
}

/// Runs `ip` in namespace `namespace`.
fn ip(namespace: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["-n", namespace];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// A veth pair between two namespaces, both ends up.
fn veth((ns_a, end_a): (&str, &str), (ns_b, end_b): (&str, &str)) -> Result<(), String> {
    run(
        "ip",
        &["link", "add", "name", end_a, "netns", ns_a, "type", "veth", "peer", "name", end_b, "netns", ns_b],
    )?;
    ip(ns_a, &["link", "set", end_a, "up"])?;
    ip(ns_b, &["link", "set", end_b, "up"])
}

/// Whether this process may create network namespaces (root, with `ip` and the kernel's
/// support); the error says why not.
pub fn available() -> Result<(), String> {
    let probe = format!("crucial-probe-{}", std::process::id());
    run("ip", &["netns", "add", &probe])?;
    let veth = run("ip", &["-n", &probe, "link", "add", "name", "a", "type", "veth", "peer", "name", "b"]);
    let tbf = veth.and_then(|()| {
        run(
            "ip",
            &[
                "netns", "exec", &probe, "tc", "qdisc", "replace", "dev", "a", "root", "tbf", "rate", "8bit",
                "burst", "1", "limit", "1",
            ],
        )
    });
    let _ = run("ip", &["netns", "del", &probe]);
    tbf
}

impl Topology {
    /// Creates the hub and `members` member namespaces (names start with `prefix`), their
    /// links and routes.
    pub fn create(prefix: &str, members: usize) -> Result<Topology, String> {
        let topology = Topology { prefix: prefix.to_string(), members };
        topology.delete();
        let hub = topology.hub();
        run("ip", &["netns", "add", &hub])?;
        ip(&hub, &["link", "set", "lo", "up"])?;
        ip(&hub, &["addr", "add", &format!("{STORE_IP}/32"), "dev", "lo"])?;
        for member in 0..members {
            let ns = topology.member(member);
            run("ip", &["netns", "add", &ns])?;
            ip(&ns, &["link", "set", "lo", "up"])?;
            ip(&ns, &["addr", "add", &format!("{}/32", Topology::service_ip(member)), "dev", "lo"])?;
            // The client link (`c`, hub side `cN`: 10.77.N.1 and .2) and the store link (`s`,
            // `sN`: 10.78.N.1 and .2).
            for (link, subnet) in [("c", 77), ("s", 78)] {
                let hub_end = format!("{link}{member}");
                veth((&ns, link), (&hub, &hub_end))?;
                ip(&ns, &["addr", "add", &format!("10.{subnet}.{member}.2/30"), "dev", link])?;
                ip(&hub, &["addr", "add", &format!("10.{subnet}.{member}.1/30"), "dev", &hub_end])?;
            }
            let service = Topology::service_ip(member);
            ip(
                &hub,
                &[
                    "route",
                    "add",
                    &service,
                    "via",
                    &format!("10.77.{member}.2"),
                    "dev",
                    &format!("c{member}"),
                ],
            )?;
            ip(&ns, &["route", "add", STORE_IP, "via", &format!("10.78.{member}.1"), "dev", "s"])?;
        }
        for a in 0..members {
            for b in a + 1..members {
                // Pair link: `pB` in A's namespace, `pA` in B's; no addresses, host routes.
                let (ns_a, ns_b) = (topology.member(a), topology.member(b));
                let (end_a, end_b) = (format!("p{b}"), format!("p{a}"));
                veth((&ns_a, &end_a), (&ns_b, &end_b))?;
                for (ns, end, me, peer) in [(&ns_a, &end_a, a, b), (&ns_b, &end_b, b, a)] {
                    let (to, src) = (Topology::service_ip(peer), Topology::service_ip(me));
                    ip(ns, &["route", "add", &to, "dev", end, "src", &src])?;
                }
            }
        }
        Ok(topology)
    }

    /// The hub's namespace (clients).
    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Member `index`'s namespace.
    pub fn member(&self, index: usize) -> String {
        format!("{}-m{index}", self.prefix)
    }

    /// The address member `index` serves at.
    pub fn service_ip(index: usize) -> String {
        format!("10.99.0.{}", index + 1)
    }

    /// Where member `index` listens.
    pub fn member_addr(index: usize) -> String {
        format!("{}:{MEMBER_PORT}", Topology::service_ip(index))
    }

    /// Members.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Moves the calling thread into the hub's namespace: sockets it (and threads it starts
    /// later) opens reach the members as clients do.
    pub fn enter_hub(&self) -> Result<(), String> {
        let path = format!("/run/netns/{}", self.hub());
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a file descriptor this function owns.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The link ends `partition` silences, with `target` its target.
    pub fn cut_ends(&self, partition: Partition, target: usize) -> Vec<LinkEnd> {
        let n = self.members;
        let next = (target + 1) % n;
        let end = |at: usize, to: usize| LinkEnd { namespace: self.member(at), interface: format!("p{to}") };
        let both = |a: usize, b: usize| vec![end(a, b), end(b, a)];
        match partition {
            Partition::PairCut => both(target, next),
            Partition::OneWay => vec![end(target, next)],
            Partition::PeersCut => (0..n).filter(|m| *m != target).flat_map(|m| both(target, m)).collect(),
            Partition::Isolated => {
                let mut ends = self.cut_ends(Partition::PeersCut, target);
                ends.push(LinkEnd { namespace: self.member(target), interface: "c".into() });
                ends.push(LinkEnd { namespace: self.hub(), interface: format!("c{target}") });
                ends.extend(self.cut_ends(Partition::StoreCut, target));
                ends
            }
            Partition::StoreCut => vec![
                LinkEnd { namespace: self.member(target), interface: "s".into() },
                LinkEnd { namespace: self.hub(), interface: format!("s{target}") },
            ],
            Partition::Bridge => {
                let others: Vec<usize> = (0..n).filter(|m| *m != target).collect();
                (0..others.len())
                    .flat_map(|i| (i + 1..others.len()).map(move |j| (i, j)))
                    .flat_map(|(i, j)| both(others[i], others[j]))
                    .collect()
            }
        }
    }

    /// Drops every packet leaving `ends`.
    pub fn cut(&self, ends: &[LinkEnd]) -> Result<(), String> {
        for end in ends {
            let args = ["-n", &end.namespace, "link", "show", &end.interface];
            run("ip", &args)?;
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &end.namespace,
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    &end.interface,
                    "root",
                    "tbf",
                    "rate",
                    "8bit",
                    "burst",
                    "1",
                    "limit",
                    "1",
                ],
            )?;
        }
        Ok(())
    }

    /// Lets packets leave `ends` again.
    pub fn heal(&self, ends: &[LinkEnd]) -> Result<(), String> {
        for end in ends {
            run(
                "ip",
                &["netns", "exec", &end.namespace, "tc", "qdisc", "del", "dev", &end.interface, "root"],
            )?;
        }
        Ok(())
    }

    /// Starts moto's S3 server in the hub at [`STORE_ENDPOINT`] with `bucket` in it; it stops
    /// when the returned process is dropped.
    pub fn start_store(&self, bucket: &str) -> Result<crucial_testkit::Process, String> {
        let hub = self.hub();
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &hub, "python3", "-m", "moto.server", "-H", STORE_IP, "-p", "5000"]);
        command.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        let parse = |line: &str| line.contains("Running on ").then(String::new);
        let (process, _) = crucial_testkit::spawn_announcing(
            command,
            crucial_testkit::Announces::Stderr,
            parse,
            std::time::Duration::from_secs(30),
        )
        .map_err(|error| format!("{error} (moto: pip install \"moto[server]\")"))?;
        let create = format!(
            "import boto3; boto3.client('s3', endpoint_url='{STORE_ENDPOINT}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{bucket}')"
        );
        run("ip", &["netns", "exec", &hub, "python3", "-c", &create])?;
        Ok(process)
    }

    fn delete(&self) {
        for member in 0..self.members {
            let _ = run("ip", &["netns", "del", &self.member(member)]);
        }
        let _ = run("ip", &["netns", "del", &self.hub()]);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.delete();
    }
}

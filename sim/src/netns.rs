//! Test hosts in Linux network namespaces, and real partitions between them.
//!
//! Each member runs in a namespace of its own, reached at a service address (`10.99.0.N`, on
//! its loopback interface) that clients and peers dial alike. Clients (and this process's
//! workload) live in a hub namespace, joined to each member by a link of its own; each member
//! pair is joined by a link of its own too, and host routes with `src` send peer traffic over
//! its pair's link. A partition silently drops every packet leaving chosen link ends (a `tbf`
//! qdisc of 8 bit/s with room for one byte: no RST, no error, as a real partition looks);
//! healing removes the qdisc. Everything lives in namespaces made here and deleted on drop.

use std::fmt;
use std::process::Command;

/// The port every member listens on (each at its own service address).
pub const MEMBER_PORT: u16 = 7000;

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
}

impl Partition {
    /// Every kind.
    pub const ALL: [Partition; 5] =
        [Partition::PairCut, Partition::OneWay, Partition::PeersCut, Partition::Isolated, Partition::Bridge];

    fn name(self) -> &'static str {
        match self {
            Partition::PairCut => "pair-cut",
            Partition::OneWay => "one-way",
            Partition::PeersCut => "peers-cut",
            Partition::Isolated => "isolated",
            Partition::Bridge => "bridge",
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
        run("ip", &["-n", &hub, "link", "set", "lo", "up"])?;
        for member in 0..members {
            let ns = topology.member(member);
            run("ip", &["netns", "add", &ns])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            let service = format!("{}/32", Topology::service_ip(member));
            run("ip", &["-n", &ns, "addr", "add", &service, "dev", "lo"])?;
            // The member's client link: hub side 10.77.N.1, member side 10.77.N.2.
            let hub_end = format!("c{member}");
            run(
                "ip",
                &[
                    "link", "add", "name", "c", "netns", &ns, "type", "veth", "peer", "name", &hub_end,
                    "netns", &hub,
                ],
            )?;
            run("ip", &["-n", &ns, "addr", "add", &format!("10.77.{member}.2/30"), "dev", "c"])?;
            run("ip", &["-n", &hub, "addr", "add", &format!("10.77.{member}.1/30"), "dev", &hub_end])?;
            run("ip", &["-n", &ns, "link", "set", "c", "up"])?;
            run("ip", &["-n", &hub, "link", "set", &hub_end, "up"])?;
            let via = format!("10.77.{member}.2");
            run(
                "ip",
                &["-n", &hub, "route", "add", &Topology::service_ip(member), "via", &via, "dev", &hub_end],
            )?;
        }
        for a in 0..members {
            for b in a + 1..members {
                // Pair link: `pB` in A's namespace, `pA` in B's; no addresses, host routes.
                let (ns_a, ns_b) = (topology.member(a), topology.member(b));
                let (end_a, end_b) = (format!("p{b}"), format!("p{a}"));
                run(
                    "ip",
                    &[
                        "link", "add", "name", &end_a, "netns", &ns_a, "type", "veth", "peer", "name",
                        &end_b, "netns", &ns_b,
                    ],
                )?;
                for (ns, end, me, peer) in [(&ns_a, &end_a, a, b), (&ns_b, &end_b, b, a)] {
                    run("ip", &["-n", ns, "link", "set", end, "up"])?;
                    let (to, src) = (Topology::service_ip(peer), Topology::service_ip(me));
                    run("ip", &["-n", ns, "route", "add", &to, "dev", end, "src", &src])?;
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
                ends
            }
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

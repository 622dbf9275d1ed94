//! A real NAT between the box and the far end, made of two network
//! namespaces and slirp4netns (Debian's; the same user-mode NAT, libslirp,
//! as the virtual bridge room's QEMU network):
//!
//! ```text
//!  box namespace                         far namespace
//!  diemcau on tap0 10.0.2.100 ─ slirp ─▶ lo 10.0.3.5: baresip, STUN (coturn)
//! ```
//!
//! The box's packets leave from a port slirp picks (10.0.3.5:40960 for the
//! box's 40000, say), and only answers to those mappings come back in: the
//! far end cannot reach 10.0.2.100 itself. Loopback NAT here is
//! endpoint-independent, like slirp in QEMU; a carrier's
//! address-and-port-dependent NAT is not exercised.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The far side's address, on its loopback.
pub const FAR_IP: &str = "10.0.3.5";
/// The box's address behind slirp.
pub const BOX_IP: &str = "10.0.2.100";

/// `program` run inside `netns` (through nsenter) when given.
pub fn command_in(netns: Option<&Path>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Whether this machine can build the NAT (the tools `.ci/run` installs).
pub fn available() -> bool {
    super::have("slirp4netns") && super::have("turnserver") && super::have("nsenter")
}

pub struct SlirpNat {
    far: Child,
    boxns: Child,
    slirp: Option<Child>,
    stun: Option<Child>,
    dir: tempfile::TempDir,
}

fn ns_of(c: &Child) -> PathBuf {
    PathBuf::from(format!("/proc/{}/ns/net", c.id()))
}

/// A new network namespace, living as long as the returned placeholder
/// process; returned once the placeholder has unshared.
fn hold_netns() -> Child {
    let hold = Command::new("unshare")
        .args(["--net", "sleep", "3600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) runs");
    let t0 = Instant::now();
    while std::fs::read_link(ns_of(&hold)).ok() == std::fs::read_link("/proc/self/ns/net").ok() {
        assert!(t0.elapsed() < Duration::from_secs(5), "unshare too slow");
        std::thread::sleep(Duration::from_millis(10));
    }
    hold
}

fn run_in(ns: &Path, args: &[&str]) {
    let out = command_in(Some(ns), args[0])
        .args(&args[1..])
        .output()
        .expect("nsenter runs");
    assert!(
        out.status.success(),
        "{args:?} in {}: {}",
        ns.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SlirpNat {
    pub fn new() -> SlirpNat {
        let dir = tempfile::tempdir().unwrap();
        let mut nat = SlirpNat {
            far: hold_netns(),
            boxns: hold_netns(),
            slirp: None,
            stun: None,
            dir,
        };
        run_in(&nat.far_ns(), &["ip", "link", "set", "lo", "up"]);
        run_in(
            &nat.far_ns(),
            &["ip", "addr", "add", &format!("{FAR_IP}/32"), "dev", "lo"],
        );
        run_in(&nat.box_ns(), &["ip", "link", "set", "lo", "up"]);
        let log = std::fs::File::create(nat.dir.path().join("slirp.log")).unwrap();
        nat.slirp = Some(
            command_in(Some(&nat.far_ns()), "slirp4netns")
                .args(["--configure", "--mtu", "1500", "--disable-host-loopback"])
                .arg(nat.boxns.id().to_string())
                .arg("tap0")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("slirp4netns runs"),
        );
        let t0 = Instant::now();
        loop {
            let out = command_in(Some(&nat.box_ns()), "ip")
                .args(["-4", "addr", "show", "tap0"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains(BOX_IP) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "slirp4netns did not configure tap0: {}",
                std::fs::read_to_string(nat.dir.path().join("slirp.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nat
    }

    pub fn far_ns(&self) -> PathBuf {
        ns_of(&self.far)
    }

    pub fn box_ns(&self) -> PathBuf {
        ns_of(&self.boxns)
    }

    /// A STUN server (coturn, STUN only) on the far side at FAR_IP:3478.
    pub fn start_stun(&mut self) {
        self.stun = Some(start_stun(&self.far_ns(), self.dir.path()));
    }
}

/// coturn answering STUN only, at FAR_IP:3478 inside `netns`, logging to
/// `dir/stun.log`; returned once it listens.
fn start_stun(netns: &Path, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("stun.log")).unwrap();
    let child = command_in(Some(netns), "turnserver")
        .args([
            "-n",
            "--stun-only",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--listening-ip",
            FAR_IP,
            "--listening-port",
            "3478",
            "--log-file",
            "stdout",
            "--simple-log",
            "--pidfile",
        ])
        .arg(dir.join("turn.pid"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("turnserver (coturn) runs");
    let t0 = Instant::now();
    while !std::fs::read_to_string(dir.join("stun.log"))
        .unwrap_or_default()
        .contains("General servers")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "coturn did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// The host's end of [`FarNet`]'s veth pair.
pub const HOST_VETH_IP: &str = "10.0.3.1";

/// A far side the host reaches too: a network namespace joined to the
/// host's by a veth pair (host end 10.0.3.1, far end [`FAR_IP`]).
///
/// ```text
///  QEMU guest 10.0.2.15 ─ slirp (QEMU, on the host) ─▶ veth 10.0.3.1 ─▶ 10.0.3.5: Kamailio, STUN, baresip
/// ```
///
/// For the virtual room, whose QEMU runs on the host and whose user-mode
/// network (libslirp) is the box's NAT: the guest reaches 10.0.3.5 through
/// slirp and the far side sees the host's 10.0.3.1 with a port slirp
/// picked. A far end on the host's loopback would not do: it would write
/// 127.0.0.1 into its SDP and Record-Route, which inside the guest is the
/// guest itself.
pub struct FarNet {
    hold: Child,
    link: String,
    stun: Option<Child>,
    dir: tempfile::TempDir,
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs")
}

impl FarNet {
    pub fn new() -> FarNet {
        let dir = tempfile::tempdir().unwrap();
        let hold = hold_netns();
        // Interface names are at most 15 bytes; one per test process.
        let link = format!("dcfar{}", std::process::id() % 1_000_000);
        let _ = ip(&["link", "del", &link]);
        let net = FarNet {
            hold,
            link,
            stun: None,
            dir,
        };
        let pid = net.hold.id().to_string();
        for args in [
            vec![
                "link", "add", &net.link, "type", "veth", "peer", "name", "far0", "netns", &pid,
            ],
            vec!["addr", "add", "10.0.3.1/24", "dev", &net.link],
            vec!["link", "set", &net.link, "up"],
        ] {
            let out = ip(&args);
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ns = net.ns();
        run_in(&ns, &["ip", "link", "set", "lo", "up"]);
        run_in(
            &ns,
            &["ip", "addr", "add", &format!("{FAR_IP}/24"), "dev", "far0"],
        );
        run_in(&ns, &["ip", "link", "set", "far0", "up"]);
        net
    }

    /// The far side's namespace.
    pub fn ns(&self) -> PathBuf {
        ns_of(&self.hold)
    }

    /// A STUN server (coturn, STUN only) at FAR_IP:3478.
    pub fn start_stun(&mut self) {
        self.stun = Some(start_stun(&self.ns(), self.dir.path()));
    }

    /// Everything leaving the far side for the host goes through a token
    /// bucket of `kbit` kbit/s holding `latency_ms` of queue (tbf: what an
    /// uplink's shaper is; this kernel has no netem). The far side is then
    /// a box behind a narrow uplink, TCP and UDP sharing it.
    pub fn shape_outbound(&self, kbit: u32, latency_ms: u32) {
        run_in(
            &self.ns(),
            &[
                "tc",
                "qdisc",
                "add",
                "dev",
                "far0",
                "root",
                "tbf",
                "rate",
                &format!("{kbit}kbit"),
                "burst",
                "6kb",
                "latency",
                &format!("{latency_ms}ms"),
            ],
        );
    }
}

impl Drop for FarNet {
    fn drop(&mut self) {
        if let Some(c) = self.stun.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Going with the namespace, the veth pair goes too; said anyway.
        let _ = ip(&["link", "del", &self.link]);
        let _ = self.hold.kill();
        let _ = self.hold.wait();
    }
}

impl Drop for SlirpNat {
    fn drop(&mut self) {
        for c in [self.stun.as_mut(), self.slirp.as_mut()]
            .into_iter()
            .flatten()
            .chain([&mut self.far, &mut self.boxns])
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

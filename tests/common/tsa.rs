//! A local RFC 3161 time-stamping authority: OpenSSL's `ts -reply` behind
//! a small HTTP responder in the test (one thread, one request at a time).
//! The tokens are OpenSSL's, signed by a throwaway CA's time-stamping
//! certificate; only the HTTP wrapper is ours, since no TSA server is
//! packaged in Debian.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::mqtt::{openssl, EC_KEY};

pub struct Tsa {
    /// `http://127.0.0.1:PORT/tsr`.
    pub url: String,
    /// The CA certificate (PEM) the authority's certificate chains to.
    pub ca: PathBuf,
    /// Time-stamp requests answered with a token.
    pub granted: Arc<AtomicU64>,
    refusing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    dir: tempfile::TempDir,
}

impl Tsa {
    pub fn start() -> Tsa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut ca = vec!["req", "-x509"];
        ca.extend_from_slice(&EC_KEY);
        ca.extend_from_slice(&[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=diemcau test TSA CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &ca);
        let mut req = vec!["req"];
        req.extend_from_slice(&EC_KEY);
        req.extend_from_slice(&[
            "-keyout",
            "tsa.key",
            "-out",
            "tsa.csr",
            "-subj",
            "/CN=diemcau test TSA",
        ]);
        openssl(d, &req);
        // RFC 3161 2.3: the authority's certificate has exactly the
        // critical timeStamping extended key usage.
        std::fs::write(
            d.join("ext.cnf"),
            "extendedKeyUsage=critical,timeStamping\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "tsa.pem",
                "-days",
                "30",
                "-extfile",
                "ext.cnf",
            ],
        );
        let p = d.display();
        std::fs::write(
            d.join("tsa.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = tsa_config1\n[ tsa_config1 ]\nserial = {p}/serial\n\
                 crypto_device = builtin\nsigner_cert = {p}/tsa.pem\ncerts = {p}/ca.pem\n\
                 signer_key = {p}/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\n\
                 other_policies = 1.2.3.4.5\ndigests = sha256\naccuracy = secs:1\nordering = yes\n\
                 tsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n"
            ),
        )
        .unwrap();
        std::fs::write(d.join("serial"), "01\n").unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/tsr", listener.local_addr().unwrap());
        let (granted, refusing, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (g, r, s, work) = (
            granted.clone(),
            refusing.clone(),
            stop.clone(),
            d.to_owned(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                        answer(conn, &work, r.load(Ordering::SeqCst), &g);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Tsa {
            url,
            ca: d.join("ca.pem"),
            granted,
            refusing,
            stop,
            dir,
        }
    }

    /// Answer 503 (an authority that is down) until told otherwise.
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    /// A token from this authority for other bytes than `data`.
    pub fn token_for(&self, data: &[u8]) -> Vec<u8> {
        let d = self.dir.path();
        std::fs::write(d.join("other.data"), data).unwrap();
        openssl(
            d,
            &[
                "ts",
                "-query",
                "-data",
                "other.data",
                "-sha256",
                "-cert",
                "-out",
                "other.tsq",
            ],
        );
        openssl(
            d,
            &[
                "ts",
                "-reply",
                "-config",
                "tsa.cnf",
                "-queryfile",
                "other.tsq",
                "-out",
                "other.tsr",
            ],
        );
        std::fs::read(d.join("other.tsr")).unwrap()
    }
}

impl Drop for Tsa {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One HTTP/1.1 request: a time-stamp query in, OpenSSL's reply out.
fn answer(conn: std::net::TcpStream, work: &Path, refusing: bool, granted: &AtomicU64) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut conn = conn;
    if refusing {
        let _ = conn.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    let n = granted.load(Ordering::SeqCst);
    let (q, r) = (
        work.join(format!("q{n}.tsq")),
        work.join(format!("r{n}.tsr")),
    );
    std::fs::write(&q, &body).unwrap();
    let out = Command::new("openssl")
        .current_dir(work)
        .args(["ts", "-reply", "-config", "tsa.cnf", "-queryfile"])
        .arg(&q)
        .arg("-out")
        .arg(&r)
        .output()
        .unwrap();
    let reply = std::fs::read(&r).unwrap_or_default();
    if !out.status.success() || reply.is_empty() {
        let _ = conn.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    granted.fetch_add(1, Ordering::SeqCst);
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reply.len()
        )
        .as_bytes(),
    );
    let _ = conn.write_all(&reply);
}

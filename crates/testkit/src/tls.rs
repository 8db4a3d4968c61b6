//! Test certificates (made with `openssl`) and Debian's `stunnel4` as a TLS front for test
//! servers that cannot serve TLS themselves (Tansu 0.6.0, rivven-schema).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::kafka::wait_listening;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed to make test certificates (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, a client certificate signed by it,
/// and an unrelated CA.
pub fn certificates(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=weir test {ca}"),
            ],
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    // Extensions make them X.509 v3 certificates; rustls refuses v1.
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for name in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN=weir test {name}"),
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(["-extfile".into(), format!("{name}.ext")]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(dir, &refs);
    }
}

/// stunnel on a TLS port forwarding to a plain-TCP test server, killed on drop.
pub struct Stunnel(Child);

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn stunnel(dir: &Path, tls_port: u16, backend_port: u16, mutual: bool) -> Stunnel {
    let d = dir.display();
    let mut conf = format!(
        "foreground = yes\npid =\n[weir-test]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{backend_port}\ncert = {d}/server.pem\nkey = {d}/server.key\n"
    );
    if mutual {
        conf.push_str(&format!("verifyChain = yes\nCAfile = {d}/ca.pem\n"));
    }
    let path = dir.join(format!("stunnel-{tls_port}.conf"));
    std::fs::write(&path, conf).unwrap();
    let bin = ["stunnel4", "stunnel"]
        .into_iter()
        .find(|b| {
            Command::new("which")
                .arg(b)
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect(
            "stunnel4 is needed for the TLS tests (apt-get install stunnel4; scripts/test.sh does)",
        );
    let child = Command::new(bin)
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("stunnel-{tls_port}.log"))).unwrap())
        .spawn()
        .expect("cannot start stunnel");
    let s = Stunnel(child);
    wait_listening(&format!("127.0.0.1:{tls_port}"), Duration::from_secs(10));
    s
}

/// A folder holding `server.pem` (valid for 127.0.0.1, signed by `dir`'s CA, but expired in
/// 2020), `server.key` and `ca.pem`, for a server whose certificate must be refused.
pub fn expired_server(dir: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n[any]\ncommonName = supplied\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "server.csr",
            "-out",
            "expired.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-extfile",
            "server.ext",
        ],
    );
    std::fs::copy(dir.join("expired.pem"), out.path().join("server.pem")).unwrap();
    std::fs::copy(dir.join("server.key"), out.path().join("server.key")).unwrap();
    std::fs::copy(dir.join("ca.pem"), out.path().join("ca.pem")).unwrap();
    out
}

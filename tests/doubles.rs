//! The doubles of the forge APIs and chat robots (tests/doubles/forge.py), started for one
//! test: one process on one loopback port, every service under its prefix (`/github`,
//! `/gitlab/api/v4`, `/dingtalk/robot/send`, ...). They check method, path, headers and
//! JSON as each service documents them, verify DingTalk's and Feishu's signatures with
//! their own code (tests/doubles/signatures.py, from the vendors' documents), and record
//! every request as a JSON line the test reads. `/hang/...` accepts and never answers.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{system_program, wait_for};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub struct Doubles {
    child: Child,
    pub port: u16,
    /// A port whose connect() never completes.
    pub blackhole: u16,
    record: PathBuf,
}

impl Doubles {
    /// Starts them with `conf` (see forge.py's doc) in `dir`, and waits for their ready file.
    pub fn start(dir: &Path, conf: &Value) -> Doubles {
        fs::create_dir_all(dir).unwrap();
        let conf_file = dir.join("doubles.json");
        fs::write(&conf_file, conf.to_string()).unwrap();
        let ready = dir.join("doubles.ready");
        let record = dir.join("requests.jsonl");
        let child = Command::new(system_program("python3", "python3"))
            .arg(Path::new(ROOT).join("tests/doubles/forge.py"))
            .arg("--config")
            .arg(&conf_file)
            .arg("--record")
            .arg(&record)
            .arg("--ready")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("doubles.stderr")).unwrap())
            .spawn()
            .expect("python3");
        wait_for("the doubles' ready file", Duration::from_secs(20), || ready.exists());
        let info: Value = serde_json::from_slice(&fs::read(&ready).unwrap()).unwrap();
        Doubles {
            child,
            port: info["port"].as_u64().unwrap() as u16,
            blackhole: info["blackhole"].as_u64().unwrap() as u16,
            record,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The requests to `service`.
    pub fn to(&self, service: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["service"] == service)
            .collect()
    }

    /// Waits until `count` requests to `service` were answered, and returns them all.
    pub fn wait_for(&self, service: &str, count: usize, limit: Duration) -> Vec<Value> {
        wait_for(
            &format!(
                "{count} requests to the {service} double (so far: {:?})",
                self.to(service)
            ),
            limit,
            || self.to(service).len() >= count,
        );
        self.to(service)
    }
}

impl Drop for Doubles {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

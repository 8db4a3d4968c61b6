//! `weir ctl`: the operations API from the command line, kubectl-like. Everything goes through
//! the public API; the API's error message is shown as it is, and the exit status is non-zero
//! on failure.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value as Json, json};

/// Options of `weir ctl`.
#[derive(clap::Args)]
pub struct CtlArgs {
    /// The API's address.
    #[arg(
        long,
        env = "WEIR_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// A file holding the bearer token (else `WEIR_ADMIN_TOKEN`).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// A PEM file of the certificate authority of an API served over TLS.
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
    /// Output: a table for people, or JSON / YAML for programs.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human tables.
    Table,
    /// JSON, as the API answers.
    Json,
    /// YAML.
    Yaml,
}

/// What `weir ctl` does.
#[derive(clap::Subcommand)]
pub enum CtlCommand {
    /// List the pipelines.
    List,
    /// Show a pipeline's definition and status.
    Get {
        /// Pipeline name.
        name: String,
    },
    /// Create or replace the pipelines of a file: a pipeline body (`name:` plus its keys), or
    /// a pipeline file (`pipelines:`).
    Apply {
        /// The file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Drain, commit and remove a pipeline.
    Delete {
        /// Pipeline name.
        name: String,
    },
    /// Stop reading; the consumer stays in its group.
    Pause {
        /// Pipeline name.
        name: String,
    },
    /// Read again.
    Resume {
        /// Pipeline name.
        name: String,
    },
    /// Drain, commit and stop.
    Stop {
        /// Pipeline name.
        name: String,
    },
    /// Start a stopped or failed pipeline.
    Start {
        /// Pipeline name.
        name: String,
    },
    /// Drain, commit and start again.
    Restart {
        /// Pipeline name.
        name: String,
    },
    /// Show a pipeline's status.
    Status {
        /// Pipeline name.
        name: String,
    },
    /// Show, set or reset a Kafka pipeline's consumer-group offsets (set and reset need the
    /// pipeline stopped).
    Offsets {
        /// Pipeline name.
        name: String,
        /// Back to where the source's `start_from` says.
        #[arg(long, conflicts_with = "set")]
        reset: bool,
        /// `PARTITION=OFFSET` (a single-topic pipeline) or `TOPIC:PARTITION=OFFSET`.
        #[arg(long, value_name = "[TOPIC:]P=O")]
        set: Vec<String>,
    },
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(args: &CtlArgs) -> anyhow::Result<Client> {
        let token = match &args.token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read the token file {}", f.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("WEIR_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        };
        let mut b = reqwest::Client::builder();
        if let Some(ca) = &args.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", ca.display()))?,
            );
        }
        Ok(Client {
            http: b.build().context("cannot build the HTTP client")?,
            base: args.server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(String, &'static str)>,
    ) -> anyhow::Result<Json> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some((text, ct)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, ct).body(text);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the Weir API at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let json: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        if status.is_success() {
            return Ok(json);
        }
        let e = &json["error"];
        let mut msg = e["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}: {text}"));
        for d in e["details"].as_array().into_iter().flatten() {
            msg.push_str(&format!(
                "\n  {}:{}: {}{}",
                d["line"],
                d["column"],
                d["path"]
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("{p}: "))
                    .unwrap_or_default(),
                d["message"].as_str().unwrap_or_default()
            ));
        }
        anyhow::bail!("{msg}")
    }
}

fn print(out: Output, v: &Json, table: impl FnOnce(&Json) -> String) -> anyhow::Result<()> {
    match out {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Yaml => print!(
            "{}",
            serde_saphyr::to_string(v).context("cannot write YAML")?
        ),
        Output::Table => print!("{}", table(v)),
    }
    Ok(())
}

/// Columns with widths from the longest cell.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn text(v: &Json) -> String {
    match v {
        Json::Null => "-".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn status_table(s: &Json) -> String {
    let mut out = table(
        &[
            "NAME",
            "STATE",
            "DESIRED",
            "GENERATION",
            "RESTARTS",
            "SINCE",
        ],
        vec![vec![
            text(&s["name"]),
            text(&s["state"]),
            text(&s["desired_state"]),
            format!(
                "{}/{}",
                text(&s["observed_generation"]),
                text(&s["generation"])
            ),
            text(&s["restart_count"]),
            text(&s["since"]),
        ]],
    );
    for (k, label) in [
        ("reason", "reason"),
        ("last_error", "last error"),
        ("last_reload_error", "last reload error"),
    ] {
        if let Some(r) = s[k].as_str() {
            out.push_str(&format!("{label}: {r}\n"));
        }
    }
    let rows: Vec<Vec<String>> = s["components"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                text(&c["name"]),
                text(&c["kind"]),
                text(&c["state"]),
                text(&c["received_events"]),
                text(&c["sent_events"]),
                text(&c["errors"]),
                c["reason"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &[
                "COMPONENT",
                "KIND",
                "STATE",
                "RECEIVED",
                "SENT",
                "ERRORS",
                "REASON",
            ],
            rows,
        ));
    }
    out
}

fn offsets_table(v: &Json) -> String {
    table(
        &["TOPIC", "PARTITION", "COMMITTED", "LOG END", "LAG"],
        v["offsets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                vec![
                    text(&o["topic"]),
                    text(&o["partition"]),
                    text(&o["committed"]),
                    text(&o["log_end"]),
                    text(&o["lag"]),
                ]
            })
            .collect(),
    )
}

/// The bodies to apply from a file: one pipeline body, or each pipeline of a pipeline file.
fn bodies(path: &PathBuf) -> anyhow::Result<Vec<(String, String, &'static str)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
    let doc: Json = if is_json {
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
    } else {
        serde_saphyr::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))?
    };
    if let Some(name) = doc.get("name").and_then(Json::as_str) {
        let ct = if is_json {
            "application/json"
        } else {
            "application/yaml"
        };
        return Ok(vec![(name.to_owned(), text, ct)]);
    }
    let Some(pipelines) = doc.get("pipelines").and_then(Json::as_object) else {
        anyhow::bail!(
            "{} is neither a pipeline body (`name:` plus its keys) nor a pipeline file (`pipelines:`)",
            path.display()
        );
    };
    let registry = doc.get("schema_registry").cloned();
    Ok(pipelines
        .iter()
        .map(|(name, p)| {
            let mut body = json!({ "name": name });
            if let Some(m) = p.as_object() {
                for (k, v) in m {
                    body[k] = v.clone();
                }
            }
            if let (Some(r), None) = (&registry, p.get("schema_registry")) {
                body["schema_registry"] = r.clone();
            }
            (name.clone(), body.to_string(), "application/json")
        })
        .collect())
}

fn enc(name: &str) -> String {
    // Names are letters, digits, `-`, `_` and `.`; anything else is escaped for the URL.
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub async fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args)?;
    let out = args.output;
    use reqwest::Method;
    match &args.command {
        CtlCommand::List => {
            let v = c.call(Method::GET, "/v1/pipelines", None).await?;
            print(out, &v, |v| {
                table(
                    &["NAME", "STATE", "DESIRED", "ORIGIN"],
                    v["pipelines"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            let origin = match p["file"].as_str() {
                                Some(f) => format!("file ({f})"),
                                None => text(&p["origin"]),
                            };
                            vec![
                                text(&p["name"]),
                                text(&p["state"]),
                                text(&p["desired_state"]),
                                origin,
                            ]
                        })
                        .collect(),
                )
            })?;
        }
        CtlCommand::Get { name } => {
            let v = c
                .call(Method::GET, &format!("/v1/pipelines/{}", enc(name)), None)
                .await?;
            print(out, &v, |v| {
                format!(
                    "{}\ndefinition:\n{}",
                    status_table(&v["status"]),
                    serde_saphyr::to_string(&v["definition"]).unwrap_or_default()
                )
            })?;
        }
        CtlCommand::Apply { file } => {
            let mut applied = Vec::new();
            for (name, body, ct) in bodies(file)? {
                let v = c
                    .call(
                        Method::PUT,
                        &format!("/v1/pipelines/{}", enc(&name)),
                        Some((body, ct)),
                    )
                    .await
                    .with_context(|| format!("pipeline `{name}`"))?;
                applied.push(v);
            }
            let v = Json::Array(applied);
            print(out, &v, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        format!(
                            "pipeline/{} applied (generation {})\n",
                            text(&s["name"]),
                            text(&s["generation"])
                        )
                    })
                    .collect()
            })?;
        }
        CtlCommand::Delete { name } => {
            c.call(
                Method::DELETE,
                &format!("/v1/pipelines/{}", enc(name)),
                None,
            )
            .await?;
            if out == Output::Table {
                println!("pipeline/{name} deleted");
            } else {
                print(out, &json!({"deleted": name}), |_| String::new())?;
            }
        }
        CtlCommand::Pause { name }
        | CtlCommand::Resume { name }
        | CtlCommand::Stop { name }
        | CtlCommand::Start { name }
        | CtlCommand::Restart { name } => {
            let verb = match &args.command {
                CtlCommand::Pause { .. } => "pause",
                CtlCommand::Resume { .. } => "resume",
                CtlCommand::Stop { .. } => "stop",
                CtlCommand::Start { .. } => "start",
                _ => "restart",
            };
            let v = c
                .call(
                    Method::POST,
                    &format!("/v1/pipelines/{}/{verb}", enc(name)),
                    None,
                )
                .await?;
            print(out, &v, |v| {
                format!(
                    "pipeline/{name}: {verb} requested (now {}, desired {})\n",
                    text(&v["state"]),
                    text(&v["desired_state"])
                )
            })?;
        }
        CtlCommand::Status { name } => {
            let v = c
                .call(
                    Method::GET,
                    &format!("/v1/pipelines/{}/status", enc(name)),
                    None,
                )
                .await?;
            print(out, &v, status_table)?;
        }
        CtlCommand::Offsets { name, reset, set } => {
            let path = format!("/v1/pipelines/{}/offsets", enc(name));
            let v = if *reset {
                c.call(Method::DELETE, &path, None).await?
            } else if !set.is_empty() {
                let current = c.call(Method::GET, &path, None).await?;
                let topics: std::collections::BTreeSet<String> = current["offsets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o["topic"].as_str().map(str::to_owned))
                    .collect();
                let mut changes = Vec::new();
                for s in set {
                    let (tp, offset) = s.split_once('=').with_context(|| {
                        format!("--set {s}: write PARTITION=OFFSET or TOPIC:PARTITION=OFFSET")
                    })?;
                    let (topic, partition) = match tp.rsplit_once(':') {
                        Some((t, p)) => (t.to_owned(), p),
                        None if topics.len() == 1 => {
                            (topics.iter().next().cloned().unwrap_or_default(), tp)
                        }
                        None => anyhow::bail!(
                            "--set {s}: the pipeline reads several topics; write TOPIC:PARTITION=OFFSET"
                        ),
                    };
                    changes.push(json!({
                        "topic": topic,
                        "partition": partition.parse::<i32>().with_context(|| format!("--set {s}: the partition is a number"))?,
                        "offset": offset.parse::<i64>().with_context(|| format!("--set {s}: the offset is a number"))?,
                    }));
                }
                c.call(
                    Method::PATCH,
                    &path,
                    Some((
                        json!({ "offsets": changes }).to_string(),
                        "application/json",
                    )),
                )
                .await?
            } else {
                c.call(Method::GET, &path, None).await?
            };
            print(out, &v, offsets_table)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! Several synchronised copies and `poolbench merge`: merged histograms equal
//! one recorded with every value of both inputs, counts add up, different
//! scenarios are refused, copies given the same `--start-at` measure the same
//! window on a real server, and the deploy/ recipes carry what the manual's
//! instructions (docs/several-machines.md) rely on.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use yaml_rust2::{Yaml, YamlLoader};

mod common;
use common::{args, poolbench, read_report, show, start_server, u, write_scenario};

/// A histogram recorded directly with the hdrhistogram crate.
fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).unwrap();
    h.auto(true);
    for v in values {
        h.record(v).unwrap();
    }
    h
}

fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn summary(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(), "mean_us": h.mean(), "stddev_us": h.stdev(), "min_us": h.min(),
        "p50_us": h.value_at_quantile(0.5), "p90_us": h.value_at_quantile(0.9),
        "p95_us": h.value_at_quantile(0.95), "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999), "max_us": h.max(), "hdr": encode(h),
    })
}

/// Reproducible latencies: `n` values from `lo` to `lo + spread`, skewed
/// towards the low end like real latencies.
fn latencies(seed: u64, n: usize, lo: u64, spread: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            // xorshift64: enough spread for a test, no dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = (x % 1_000_000) as f64 / 1_000_000.0;
            lo + (f * f * spread as f64) as u64
        })
        .collect()
}

/// The report.json of copy `index`: one pool strategy, one round of one
/// second that started at `start_ms`, measuring `values`.
fn report(index: u32, sha256: &str, start_ms: u64, values: &[u64]) -> Value {
    let h = histogram(values.iter().copied());
    let n = values.len() as u64;
    json!({
        "schema_version": 1,
        "tool": {"name": "poolbench", "version": "0.1.0", "build": "release"},
        "started_at": "2026-11-22T10:00:00Z",
        "interrupted": false,
        "host": {"name": format!("worker-{index}"), "cpus": 4, "os": "linux", "arch": "x86_64"},
        "server": {
            "version": "16.4", "auth_method": "unknown", "ssl": true, "max_connections": 200,
            "embedded": false, "dsn": "postgres://app:****@db.internal:5432/app"
        },
        "scenario": {
            "name": "lookup", "path": "lookup.toml", "sha256": sha256,
            "resolved": {"run": {"duration": "1s", "concurrency": 4}}
        },
        "strategies": [{
            "name": "pool-4", "kind": "pool", "settings": {"max_size": 4},
            "requests": n, "errors": {"pool_timeout": 1}, "error_samples": {},
            "throughput_rps": n as f64, "connections_opened": 4, "startup_ms": 3.0,
            "measured_s": 1.0,
            "phases": {"total": summary(&h), "query": summary(&h)},
            "per_query": {"lookup": summary(&h)},
            "rounds": [{
                "round": 1, "requests": n, "errors": 1, "throughput_rps": n as f64,
                "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99),
                "started_unix_ms": start_ms
            }],
            "timeline": [{
                "round": 1, "second": 0, "rps": n as f64, "errors": 1,
                "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99),
                "pool_size": 4, "pool_available": 0, "pool_waiting": 2, "server_backends": 9,
                "hdr": {"total": encode(&h)}
            }]
        }],
        "comparison": [],
        "instance_index": index,
        "start_at": "2026-11-22T10:00:00Z",
        "clock_offset_ms": 0.4
    })
}

fn write(dir: &Path, report: &Value) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(report).unwrap()).unwrap();
    path
}

const SHA: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const START_MS: u64 = 1_795_341_600_000; // 2026-11-22T10:00:00Z

/// The merged histograms are those of every value of both inputs, recorded
/// at once; requests and errors add up; the merged report is a report that
/// `compare` reads, with its CSVs, and it lists its inputs.
#[tokio::test(flavor = "multi_thread")]
async fn merged_histograms_equal_the_union_of_the_values() {
    let tmp = tempfile::tempdir().unwrap();
    let a = latencies(1, 20_000, 200, 5_000);
    let b = latencies(2, 30_000, 900, 250_000);
    write(&tmp.path().join("a"), &report(0, SHA, START_MS, &a));
    let b_file = write(&tmp.path().join("b"), &report(1, SHA, START_MS + 40, &b));
    let out = tmp.path().join("merged");
    let o = poolbench(vec![
        "merge".into(),
        tmp.path().join("a").display().to_string(),
        b_file.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    let union = histogram(a.iter().chain(&b).copied());
    let merged = read_report(&out);
    let s = &merged["strategies"][0];
    for summary in [
        &s["phases"]["total"],
        &s["phases"]["query"],
        &s["per_query"]["lookup"],
        &s["timeline"][0]["hdr"],
    ] {
        let (count, decoded) = match summary.get("hdr") {
            Some(hdr) => (u(&summary["count"]), hdr.as_str().unwrap()),
            // A timeline second: its histogram by phase.
            None => (50_000, summary["total"].as_str().unwrap()),
        };
        assert_eq!(count, 50_000);
        let h = hdrhistogram::serialization::Deserializer::new()
            .deserialize::<u64, _>(
                &mut base64::engine::general_purpose::STANDARD
                    .decode(decoded)
                    .unwrap()
                    .as_slice(),
            )
            .unwrap();
        assert_eq!(h.len(), union.len());
        for q in [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            assert_eq!(h.value_at_quantile(q), union.value_at_quantile(q), "q {q}");
        }
    }
    let total = &s["phases"]["total"];
    for (key, q) in [
        ("p50_us", 0.5),
        ("p90_us", 0.9),
        ("p95_us", 0.95),
        ("p99_us", 0.99),
        ("p999_us", 0.999),
    ] {
        assert_eq!(u(&total[key]), union.value_at_quantile(q), "{key}");
    }
    assert_eq!(u(&total["min_us"]), union.min());
    assert_eq!(u(&total["max_us"]), union.max());
    assert_eq!(u(&s["rounds"][0]["p99_us"]), union.value_at_quantile(0.99));

    // Counts are summed; throughput is over the second both measured.
    assert_eq!(u(&s["requests"]), 50_000);
    assert_eq!(u(&s["errors"]["pool_timeout"]), 2);
    assert_eq!(u(&s["connections_opened"]), 8);
    assert_eq!(s["throughput_rps"], 50_000.0);
    assert_eq!(u(&s["timeline"][0]["pool_waiting"]), 4);
    assert_eq!(u(&merged["scenario"]["resolved"]["run"]["concurrency"]), 8);

    let inputs = merged["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[1]["instance_index"], 1);
    assert_eq!(inputs[1]["host"]["name"], "worker-1");
    assert_eq!(u(&inputs[1]["window_start_unix_ms"]), START_MS + 40);
    assert_eq!(u(&inputs[1]["strategies"][0]["requests"]), 30_000);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("copy 1 on worker-1 (4 cpus)"), "{stdout}");

    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(csv.contains("lookup,pool-4,pool,total,50000,"), "{csv}");
    assert!(out.join("timeline.csv").exists());

    // compare reads it like any report (exit 1 would be a regression, 2 an
    // unreadable report). The merged report ran both copies' workers, a
    // condition compare names: allowed here.
    let o = poolbench(vec![
        "compare".into(),
        tmp.path().join("a").display().to_string(),
        out.display().to_string(),
        "--allow-different".into(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", show(&o));
    let diff: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(diff.to_string().contains("pool-4"), "{diff}");
}

/// Reports of different scenarios, missing files and reports without
/// histograms are bad input (exit 2); --allow-different merges the first
/// anyway, with a warning.
#[tokio::test(flavor = "multi_thread")]
async fn different_scenarios_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let values = latencies(3, 100, 100, 1000);
    let a = write(&tmp.path().join("a"), &report(0, SHA, START_MS, &values));
    let other = SHA.replace('5', "7");
    let b = write(&tmp.path().join("b"), &report(1, &other, START_MS, &values));
    let merge = |extra: &[&str], out: &str| {
        let mut list = vec![
            "merge".to_string(),
            a.display().to_string(),
            b.display().to_string(),
            "--out".into(),
            tmp.path().join(out).display().to_string(),
        ];
        list.extend(args(extra));
        poolbench(list)
    };
    let o = merge(&[], "refused").await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("different") && stderr.contains("--allow-different"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!tmp.path().join("refused/report.json").exists());

    let o = merge(&["--allow-different"], "allowed").await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: merged although"));

    let o = poolbench(args(&[
        "merge",
        &a.display().to_string(),
        "/nonexistent/report.json",
        "--out",
        &tmp.path().join("x").display().to_string(),
    ]))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));

    let mut no_hdr = report(1, SHA, START_MS, &values);
    no_hdr["strategies"][0]["phases"]["total"]["hdr"] = json!("");
    let c = write(&tmp.path().join("c"), &no_hdr);
    let o = poolbench(args(&[
        "merge",
        &a.display().to_string(),
        &c.display().to_string(),
        "--out",
        &tmp.path().join("y").display().to_string(),
    ]))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot be merged exactly"),
        "{}",
        show(&o)
    );
}

const COPY_SCENARIO: &str = r#"
name = "copies"
[run]
duration = "2s"
warmup = "0s"
concurrency = 2
seed = 5

[[strategy]]
name = "pool-2"
kind = "pool"
max_size = 2
min_size = 2

[[query]]
name = "lookup"
sql = "SELECT $1::int8 + 1"
params = [{ int = [1, 1000] }]
"#;

/// Two processes given the same --start-at (and their own indexes) on one
/// real server measure windows that overlap by at least 95%; each records
/// its index, the start and its clock; their merge adds their requests.
#[tokio::test(flavor = "multi_thread")]
async fn copies_with_the_same_start_share_their_window() {
    let server = start_server(50).await;
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "copies", COPY_SCENARIO);
    let start = SystemTime::now() + Duration::from_secs(3);
    let start_at = humantime::format_rfc3339_seconds(start).to_string();
    let start_ms = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        * 1000;
    let copy = |index: u32| {
        poolbench(vec![
            "run".into(),
            scenario.display().to_string(),
            "--dsn".into(),
            server.dsn_with_password(),
            "--start-at".into(),
            start_at.clone(),
            "--instance-index".into(),
            index.to_string(),
            "--threads".into(),
            "1".into(),
            "--quiet".into(),
            "--out".into(),
            tmp.path()
                .join(format!("copy-{index}"))
                .display()
                .to_string(),
        ])
    };
    let (a, b) = tokio::join!(copy(0), copy(1));
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    assert_eq!(b.status.code(), Some(0), "{}", show(&b));

    let mut windows = Vec::new();
    let mut requests = 0;
    for index in 0..2u32 {
        let r = read_report(&tmp.path().join(format!("copy-{index}")));
        assert_eq!(u(&r["instance_index"]), u64::from(index));
        assert_eq!(r["start_at"], start_at.as_str());
        assert!(r["clock_offset_ms"].is_number(), "{}", r["clock_offset_ms"]);
        let s = &r["strategies"][0];
        requests += u(&s["requests"]);
        let begin = u(&s["rounds"][0]["started_unix_ms"]);
        // Wall-clock times are converted from monotonic ones: a few ms of
        // slack either way.
        assert!(
            begin + 50 >= start_ms && begin < start_ms + 1000,
            "copy {index} began at {begin}, --start-at is {start_ms}"
        );
        windows.push((begin, begin + 2000));
    }
    let shared = windows[0].1.min(windows[1].1) as f64 - windows[0].0.max(windows[1].0) as f64;
    assert!(shared / 2000.0 >= 0.95, "windows {windows:?}");

    let out = tmp.path().join("merged");
    let o = poolbench(args(&[
        "merge",
        &tmp.path().join("copy-0").display().to_string(),
        &tmp.path().join("copy-1").display().to_string(),
        "--out",
        &out.display().to_string(),
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let merged = read_report(&out);
    let s = &merged["strategies"][0];
    assert_eq!(u(&s["requests"]), requests);
    assert_eq!(u(&s["phases"]["total"]["count"]), requests);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("overlap"), "{stderr}");
}

/// A --start-at already past is bad input, named as the flag, before any
/// database is touched.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_in_the_past_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "copies", COPY_SCENARIO);
    let past = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(30));
    let o = poolbench(args(&[
        "run",
        &scenario.display().to_string(),
        "--start-at",
        &past.to_string(),
        "--dsn",
        "postgres://nobody@127.0.0.1:1/none",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("--start-at") && stderr.contains("in the past"),
        "{stderr}"
    );
}

fn load_yaml(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn env_var<'a>(container: &'a Yaml, name: &str) -> &'a Yaml {
    container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no env {name}"))
}

fn strings(list: &Yaml) -> Vec<&str> {
    list.as_vec()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect()
}

/// The Kubernetes manifests are YAML with what the manual's recipe relies
/// on: an Indexed Job of N pods all at once, the index variable, the DSN
/// from the Secret, the shared start, the scenario from the ConfigMap (a
/// valid scenario), reports on one volume that the merge Job reads; and the
/// GitHub Actions recipe in docs/several-machines.md is the file in deploy/.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_recipes_carry_what_the_readme_relies_on() {
    let docs = load_yaml("deploy/kubernetes/poolbench-job.yaml");
    let job = of_kind(&docs, "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    assert!(spec["completions"].as_i64().unwrap() >= 2);
    assert_eq!(spec["parallelism"], spec["completions"]);
    assert_eq!(spec["backoffLimit"].as_i64(), Some(0));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let container = &pod["containers"][0];
    let index = &env_var(container, "JOB_COMPLETION_INDEX")["valueFrom"]["fieldRef"];
    assert_eq!(
        index["fieldPath"].as_str(),
        Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
    );
    let secret = &env_var(container, "DATABASE_URL")["valueFrom"]["secretKeyRef"];
    assert_eq!(secret["name"].as_str(), Some("poolbench-dsn"));
    assert_eq!(secret["key"].as_str(), Some("dsn"));
    let run = strings(&container["args"]);
    assert_eq!(run[0], "run");
    assert!(run.contains(&"--start-at=$(START_AT)"), "{run:?}");
    assert!(
        run.iter()
            .any(|a| a.starts_with("--out=/results/") && a.contains("$(JOB_COMPLETION_INDEX)")),
        "{run:?}"
    );
    assert_eq!(
        env_var(container, "START_AT")["value"].as_str(),
        Some("START_AT_PLACEHOLDER")
    );

    // The scenario file the Job runs is the ConfigMap's key, mounted.
    let config = of_kind(&docs, "ConfigMap");
    let volumes = pod["volumes"].as_vec().unwrap();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap()
    };
    assert_eq!(
        volume("scenario")["configMap"]["name"],
        config["metadata"]["name"]
    );
    let mounts = container["volumeMounts"].as_vec().unwrap();
    let mount = |name: &str| {
        mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(name))
            .unwrap()["mountPath"]
            .as_str()
            .unwrap()
    };
    let (dir, file) = run[1].rsplit_once('/').unwrap();
    assert_eq!(dir, mount("scenario"));
    let toml = config["data"][file]
        .as_str()
        .expect("the scenario in the ConfigMap");
    let tmp = tempfile::tempdir().unwrap();
    let path = write_scenario(tmp.path(), "configmap", toml);
    let o = poolbench(args(&["validate", &path.display().to_string()])).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));

    // Reports go to the claim the merge Job reads.
    let pvc = of_kind(&docs, "PersistentVolumeClaim");
    let claim = &volume("results")["persistentVolumeClaim"]["claimName"];
    assert_eq!(*claim, pvc["metadata"]["name"]);
    assert_eq!(mount("results"), "/results");
    let merge_docs = load_yaml("deploy/kubernetes/merge-job.yaml");
    let merge = &of_kind(&merge_docs, "Job")["spec"]["template"]["spec"];
    assert_eq!(
        merge["volumes"][0]["persistentVolumeClaim"]["claimName"],
        *claim
    );
    let command = strings(&merge["containers"][0]["args"]).join(" ");
    assert!(
        command.contains("poolbench merge /results/\"$RUN\"/copy-*"),
        "{command}"
    );
    assert_eq!(
        env_var(&merge["containers"][0], "RUN")["value"],
        env_var(container, "RUN")["value"]
    );

    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile"))
            .unwrap();
    assert_eq!(dockerfile.matches("\nFROM ").count(), 2, "multi-stage");
    assert!(dockerfile.contains("COPY --from=build"));

    let workflow = load_yaml("deploy/github-actions.yml");
    let jobs = &workflow[0]["jobs"];
    assert!(
        jobs["copy"]["strategy"]["matrix"]["index"]
            .as_vec()
            .unwrap()
            .len()
            >= 2
    );
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/github-actions.yml"),
    )
    .unwrap();
    for needle in ["--start-at", "--instance-index", "poolbench merge"] {
        assert!(text.contains(needle), "{needle}");
    }
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/several-machines.md"),
    )
    .unwrap();
    assert!(
        page.contains(&text),
        "docs/several-machines.md's GitHub Actions recipe differs from deploy/github-actions.yml"
    );
}

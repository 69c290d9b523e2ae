//! The configurations in `examples/`: each passes `gateway check` as
//! shipped (every `${VAR}` at its default) and with its variables set, next
//! to the certificates and keys made by the `openssl` commands its comments
//! give; `protected-api.yaml` also serves end to end.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::auth::{claims, signup};
use crate::harness::gateway::bin;
use crate::harness::tools::openssl;
use crate::harness::{Binary, Upstream};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// `examples/*.yaml`, sorted.
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The line without its comment: YAML starts one at a `#` that begins the
/// line or follows a blank (the examples quote no `#`).
fn without_comment(line: &str) -> &str {
    let at = line
        .char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with([' ', '\t'])))
        .map_or(line.len(), |(i, _)| i);
    &line[..at]
}

/// The environment variables the file's values name (`${NAME}` or
/// `${NAME:-default}`); comments are not interpolated and are left out.
fn variables(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().map(without_comment) {
        for (at, _) in line.match_indices("${") {
            let name: String = line[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// A value an operator might give each variable the examples use.
fn value_for(name: &str) -> &'static str {
    match name {
        "JWT_ACCESS_SECRET" => "access-secret-for-the-examples-test-0123456789",
        "JWT_REFRESH_SECRET" => "refresh-secret-for-the-examples-test-0123456789",
        "APP_ORIGIN" => "https://app.example.com",
        n if n.contains("UPSTREAM") => "http://10.0.0.7:8080",
        other => panic!("tests/e2e/examples.rs has no value for ${{{other}}}: add one"),
    }
}

/// The `openssl ...` commands in the file's comments, as argument lists
/// (continued with `\`, `"..."` quoting, a trailing `# ...` left out).
fn documented_openssl_commands(text: &str) -> Vec<Vec<String>> {
    fn comment(line: &str) -> Option<&str> {
        line.trim_start().strip_prefix('#').map(str::trim)
    }
    let mut commands = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(mut command) = comment(line)
            .filter(|c| c.starts_with("openssl "))
            .map(|c| without_comment(c).trim().to_string())
        else {
            continue;
        };
        while let Some(start) = command.strip_suffix('\\').map(str::to_string) {
            let next = lines.next().and_then(comment).expect("a continued line");
            command = format!("{start} {}", without_comment(next).trim());
        }
        commands.push(shell_words(&command));
    }
    commands
}

fn shell_words(command: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted) = (Vec::new(), None::<String>, false);
    for c in command.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            ' ' if !quoted => words.extend(word.take()),
            _ => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes in {command:?}");
    words.extend(word);
    words
}

/// A copy of the example in a fresh folder, next to what its `openssl`
/// commands make there (its relative paths resolve against that folder).
fn prepare(example: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example).unwrap();
    for args in documented_openssl_commands(&text) {
        assert_eq!(args[0], "openssl");
        for pair in args.windows(2) {
            if pair[0] == "-out" || pair[0] == "-keyout" {
                let parent = Path::new(&pair[1]).parent().unwrap();
                std::fs::create_dir_all(dir.path().join(parent)).unwrap();
            }
        }
        let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        openssl(dir.path(), &args);
    }
    let file = dir.path().join(example.file_name().unwrap());
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

/// `gateway check --config FILE` with each variable set (`Some`) or
/// removed (`None`): (exit code, stdout and stderr).
fn check(file: &Path, env: &[(&str, Option<&str>)]) -> (i32, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("check").arg("--config").arg(file);
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_example_passes_check_with_its_defaults_and_with_its_variables_set() {
    let files = example_files();
    let names: Vec<String> = files.iter().map(|f| file_name(f)).collect();
    for want in [
        "browser-app.yaml",
        "eddsa-jwks.yaml",
        "protected-api.yaml",
        "tls.yaml",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    for example in &files {
        let name = file_name(example);
        let text = std::fs::read_to_string(example).unwrap();
        assert!(!text.contains('\t'), "{name} has a tab: YAML refuses them");
        let vars = variables(&text);
        assert!(
            vars.iter().any(|v| v.starts_with("JWT_")),
            "{name}: secrets come from the environment"
        );
        let (_dir, file) = prepare(example);
        let unset: Vec<(&str, Option<&str>)> = vars.iter().map(|v| (v.as_str(), None)).collect();
        let set: Vec<(&str, Option<&str>)> = vars
            .iter()
            .map(|v| (v.as_str(), Some(value_for(v))))
            .collect();
        for (how, env) in [("at their defaults", unset), ("set", set)] {
            let (code, out) = check(&file, &env);
            assert!(
                code == 0 && out.starts_with("ok: "),
                "{name} with its variables {how} {vars:?}: exit {code}\n{out}"
            );
        }
    }
}

#[test]
fn the_examples_readme_describes_every_example() {
    let readme = std::fs::read_to_string(Path::new(EXAMPLES).join("README.md")).unwrap();
    for example in example_files() {
        let name = file_name(&example);
        assert!(
            readme.contains(&format!("**`{name}`**")),
            "examples/README.md has no paragraph on {name}"
        );
    }
}

#[test]
fn the_documented_openssl_commands_are_read_as_a_shell_would() {
    let text = "# make it:\n#   openssl req -x509 -nodes \\\n#     -subj \"/CN=a b\" -out certs/x.crt   # note\nkey: 1  # openssl not a command\n";
    assert_eq!(
        documented_openssl_commands(text),
        [[
            "openssl",
            "req",
            "-x509",
            "-nodes",
            "-subj",
            "/CN=a b",
            "-out",
            "certs/x.crt"
        ]]
    );
    assert_eq!(
        variables("a: ${A_B:-x}  # ${NOT_ME}\nb: \"${C}\"\n"),
        BTreeSet::from(["A_B".to_string(), "C".to_string()])
    );
}

#[tokio::test]
async fn protected_api_example_forwards_signed_in_users_with_their_identity() {
    let text = std::fs::read_to_string(Path::new(EXAMPLES).join("protected-api.yaml")).unwrap();
    let (one, two) = (Upstream::start().await, Upstream::start().await);
    let env = [("API_UPSTREAM", one.url()), ("API_UPSTREAM_2", two.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = Binary::serve_env(&text, &env).await;
    let received = || [one.requests(), two.requests()].concat();
    let c = gw.client();

    let (access, _) = signup(&c, "ann@example.com").await;
    let res = c.get("/api/profile?tab=1").bearer(&access).send().await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let seen = received();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/profile?tab=1", "strip_prefix: /api");
    let sub = claims(&access)["sub"].as_str().unwrap().to_string();
    let header = |name: &str| seen[0].headers.get(name).map(|v| v.to_str().unwrap());
    assert_eq!(header("x-principal-id"), Some(sub.as_str()));
    assert_eq!(header("x-principal-email"), Some("ann@example.com"));

    let res = c.get("/api/profile").send().await;
    res.assert_error(401);
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer realm="gateway""#)
    );
    // Signed in, but without the scope the orders routes need.
    let res = c.get("/api/orders/7").bearer(&access).send().await;
    res.assert_error(403);
    assert_eq!(received().len(), 1, "a denied request reached the API");

    // Public: no token read, no identity headers, even spoofed ones.
    let res = c
        .get("/api/health")
        .header("x-principal-id", "admin")
        .send()
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let seen = received();
    let health = seen
        .iter()
        .find(|r| r.target == "/health")
        .expect("/health");
    assert!(
        !health
            .headers
            .keys()
            .any(|k| k.as_str().starts_with("x-principal-")),
        "{:?}",
        health.headers
    );
}

#[test]
fn the_shipped_configs_commented_out_upstream_route_is_valid_once_uncommented() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.yaml");
    let text = std::fs::read_to_string(shipped).unwrap();
    let mut in_route = false;
    let uncommented: Vec<String> = text
        .lines()
        .map(|line| {
            in_route =
                line.starts_with("  # - name: api") || (in_route && line.starts_with("  #   "));
            match in_route {
                true => line.replacen("  # ", "  ", 1),
                false => line.to_string(),
            }
        })
        .collect();
    let uncommented = uncommented.join("\n");
    assert!(
        uncommented.contains("\n  - name: api\n"),
        "no commented-out `api` route in gateway.yaml"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, &uncommented).unwrap();
    let (code, out) = check(&file, &[]);
    assert_eq!(
        (code, out.trim()),
        (0, "ok: 3 routes, 1 listener"),
        "{uncommented}"
    );
}
